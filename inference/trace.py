"""A Chrome trace (ui.perfetto.dev, chrome://tracing) of a run's prefill and one decode step.

RDU steps are simulated again with the engine's tracing on (units, sections, bandwidth
counters); GPU steps list their kernels. The decode step is the one the report's per-step
figures show, placed after the prefill on the time axis.
"""

from __future__ import annotations

import json
from pathlib import Path

from rduflow.compiler.loading import write_atomically

from .backends import Step
from .run import Run


def trace_events(run: Run) -> list[dict]:
    from .report.figures import decode_step

    events: list[dict] = []
    module, env = run.prefill_call
    steps: list[tuple[str, Step]] = [("prefill", _traced(run, module, env))]
    d = decode_step(run)
    if d is not None:
        c, _ = d
        g = run.graphs
        seq = run.config.spec.k + 1 if run.config.spec else 1
        steps.append((f"decode at context {c}", _traced(run, g.decode, g.bindings(g.decode, run.config.batch, seq, c))))
    offset_us = 0.0
    for i, (name, step) in enumerate(steps):
        pid0 = 10 * i
        events.append({"name": "process_name", "ph": "M", "pid": pid0, "tid": 0, "args": {"name": name}})
        for ev in _step_events(step):
            ev = dict(ev)
            ev["pid"] = pid0 + ev.get("pid", 0)
            if ev.get("ph") == "M" and ev["name"] == "process_name":
                ev["args"] = {"name": f"{name}: {ev['args']['name']}"}
            if "ts" in ev:
                ev["ts"] = ev["ts"] + offset_us
            events.append(ev)
        offset_us += step.time_s * 1e6
    return events


def write_trace(run: Run, path: str | Path) -> None:
    """Write the trace through a temporary file and a rename (never a truncated JSON)."""
    text = json.dumps({"traceEvents": trace_events(run), "displayTimeUnit": "ns"})
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _traced(run: Run, module, env) -> Step:
    return run.backend.step(module, env, trace=True)


def _step_events(step: Step) -> list[dict]:
    raw_events = getattr(step.raw, "trace_events", None)
    if raw_events is not None:
        return raw_events  # the engine's own trace (RDU)
    tids: dict[str, int] = {}
    out = []
    for s in step.timeline:
        tid = tids.setdefault(s.kind, len(tids) + 1)
        out.append({"name": s.name, "cat": s.kind, "ph": "X", "ts": s.start_s * 1e6, "dur": (s.end_s - s.start_s) * 1e6,
                    "pid": 1, "tid": tid, "args": {}})
    for kind, tid in tids.items():
        out.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": kind}})
    return out
