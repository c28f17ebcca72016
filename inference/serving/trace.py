"""A Chrome trace (ui.perfetto.dev, chrome://tracing) of serving runs, one process per run.

In each process: a track of engine steps (a slice per step, its batch in the args), a track
per request with its ``queued`` (sent to first scheduled), ``prefill`` (to the first token)
and ``decode`` (to the last token) slices, rejected requests as instants on their own track,
and counters of KV blocks used, batch size and waiting requests. No per-token events, and
counters only where their value changes, so 10,000 requests stay a few MB; past
``MAX_STEP_SLICES`` steps, consecutive steps of the same batch size become one slice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rduflow.compiler.loading import write_atomically

from .engine import StepLog
from .figures import run_label
from .serve import ServeResult

MAX_STEP_SLICES = 50_000  # beyond this, steps of one batch size in a row are merged
STEPS_TID, REJECTED_TID = 0, 1
FIRST_REQUEST_TID = 2  # request i is on tid FIRST_REQUEST_TID + i
COUNTERS = (("KV blocks used", "kv_blocks", "blocks"), ("batch size", "sequences", "sequences"),
            ("waiting", "waiting", "requests"))


def trace_events(results: list[ServeResult]) -> list[dict]:
    events: list[dict] = []
    for i, r in enumerate(results):
        pid = i + 1
        events += [_meta("process_name", pid, 0, name=run_label(i, r)),
                   _meta("process_sort_index", pid, 0, sort_index=pid),
                   _meta("thread_name", pid, STEPS_TID, name="engine steps"),
                   _meta("thread_sort_index", pid, STEPS_TID, sort_index=-2)]
        events += step_slices(r.run.steps, pid)
        events += _counters(r.run.steps, pid)
        if r.run.rejected:
            events += [_meta("thread_name", pid, REJECTED_TID, name="rejected requests"),
                       _meta("thread_sort_index", pid, REJECTED_TID, sort_index=-1)]
            events += [{"name": f"request {x.request.id} rejected", "ph": "i", "s": "t", "pid": pid,
                        "tid": REJECTED_TID, "ts": _us(x.request.arrival_s), "args": {"reason": x.reason}}
                       for x in r.run.rejected]
        for s in r.run.sequences:
            events += _request(s, pid)
    return events


def write_trace(results: list[ServeResult], path: str | Path) -> None:
    """Write the trace through a temporary file and a rename (never a truncated JSON)."""
    text = json.dumps({"traceEvents": trace_events(results), "displayTimeUnit": "ms"}, separators=(",", ":"))
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def step_slices(steps: StepLog, pid: int) -> list[dict]:
    """A slice per step, named for what it computes (``prefill``, ``decode`` or ``mixed``); past
    ``MAX_STEP_SLICES`` steps, one per run of steps with the same batch size (``steps`` counts them)."""
    n = len(steps.start_s)
    if not n:
        return []
    end = steps.start_s + steps.chip_s + steps.host_s + steps.load_s + steps.switch_s
    if n > MAX_STEP_SLICES:
        starts = np.flatnonzero(np.r_[True, steps.sequences[1:] != steps.sequences[:-1]])
    else:
        starts = np.arange(n)
    stops = np.r_[starts[1:], n]
    out = []
    for a, b in zip(starts.tolist(), stops.tolist()):
        prefill, tokens = float(steps.prefill_tokens[a:b].sum()), float(steps.tokens[a:b].sum())
        kind = "decode" if prefill == 0 else "prefill" if prefill == tokens else "mixed"
        out.append({"name": kind, "cat": "step", "ph": "X", "pid": pid, "tid": STEPS_TID,
                    "ts": _us(steps.start_s[a]), "dur": _dur(steps.start_s[a], end[b - 1]),
                    "args": {"steps": b - a, "sequences": int(steps.sequences[a]), "tokens": int(tokens),
                             "prefill_tokens": int(prefill),
                             "chip_ms": round(float(steps.chip_s[a:b].sum()) * 1e3, 6),
                             "host_ms": round(float(steps.host_s[a:b].sum()) * 1e3, 6),
                             "kv_load_ms": round(float(steps.load_s[a:b].sum()) * 1e3, 6),
                             "preempted": int(steps.preempted[a:b].sum())}})
    return out


def _counters(steps: StepLog, pid: int) -> list[dict]:
    out = []
    for name, column, unit in COUNTERS:
        values = getattr(steps, column)
        changed = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else []
        out += [{"name": name, "ph": "C", "pid": pid, "ts": _us(steps.start_s[k]), "args": {unit: int(values[k])}}
                for k in changed]
    return out


def _request(s, pid: int) -> list[dict]:
    tid = FIRST_REQUEST_TID + s.req.id
    first = s.token_times[0]
    out = [_meta("thread_name", pid, tid, name=f"request {s.req.id}"),
           _meta("thread_sort_index", pid, tid, sort_index=tid),
           _slice("queued", pid, tid, s.sent_s, s.first_scheduled_s, {}),
           _slice("prefill", pid, tid, s.first_scheduled_s, first,
                  {"input_tokens": s.req.input_tokens, "prefix_tokens": s.req.prefix_tokens})]
    if s.finished_s > first:
        out.append(_slice("decode", pid, tid, first, s.finished_s,
                          {"output_tokens": s.req.output_tokens, "preemptions": s.preemptions}))
    return out


def _slice(name: str, pid: int, tid: int, start_s: float, end_s: float, args: dict) -> dict:
    return {"name": name, "cat": "request", "ph": "X", "pid": pid, "tid": tid, "ts": _us(start_s),
            "dur": _dur(start_s, end_s), "args": args}


def _meta(kind: str, pid: int, tid: int, **args) -> dict:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _us(seconds: float) -> float:
    return round(float(seconds) * 1e6, 3)  # Chrome traces count microseconds; ns precision is plenty


def _dur(start_s: float, end_s: float) -> float:
    """From the rounded ends, so that a slice ends exactly where the next one on its track starts."""
    return round(_us(end_s) - _us(start_s), 3)
