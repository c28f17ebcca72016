"""Trace replay: a ``.csv`` (with a header line) or ``.jsonl`` (one object a line) of requests.

Fields: ``arrival_s, input_tokens, output_tokens`` and optionally ``prefix_id, prefix_tokens``.
Vidur's names are read too (its traces and Request: ``arrived_at, num_prefill_tokens,
num_decode_tokens``, microsoft/vidur data/processed_traces/*.csv), and those of the traces
its trace-replay generator reads (``Time, PromptTokenCount, CompletionTokenCount``,
vidur/request_generator/trace_replay_request_generator.py). Rows are sorted by arrival and
numbered in that order.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .requests import MAX_REQUESTS, Request, Workload, WorkloadError

FIELDS = ("arrival_s", "input_tokens", "output_tokens", "prefix_id", "prefix_tokens")
REQUIRED = FIELDS[:3]
ALIASES = {
    "arrived_at": "arrival_s", "num_prefill_tokens": "input_tokens", "num_decode_tokens": "output_tokens",
    "Time": "arrival_s", "PromptTokenCount": "input_tokens", "CompletionTokenCount": "output_tokens",
}
# Columns of Vidur's trace-replay input that carry nothing a request needs (the day it was taken).
IGNORED = {"Date"}


def load_trace(path: Path) -> Workload:
    name = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise WorkloadError(f"{name}: cannot read the trace: {e.strerror or e}") from None
    rows = _csv_rows(text, name) if path.suffix.lower() == ".csv" else _jsonl_rows(text, name)
    if not rows:
        raise WorkloadError(f"{name}: the trace has no requests")
    if len(rows) > MAX_REQUESTS:
        raise WorkloadError(f"{name}: {len(rows):,} requests; at most {MAX_REQUESTS:,} are simulated")
    arrival = np.empty(len(rows))
    inputs = np.empty(len(rows), dtype=np.int64)
    outputs = np.empty(len(rows), dtype=np.int64)
    prefix_ids: list[str | None] = []
    prefix_tokens = np.zeros(len(rows), dtype=np.int64)
    for i, (line, row) in enumerate(rows):
        arrival[i] = _seconds(row["arrival_s"], name, line)
        inputs[i] = _count(row["input_tokens"], name, line, "input_tokens", 1)
        outputs[i] = _count(row["output_tokens"], name, line, "output_tokens", 1)
        pid = row.get("prefix_id")
        pid = None if pid is None or str(pid).strip() == "" else str(pid).strip()
        ptok = row.get("prefix_tokens")
        if ptok is not None and str(ptok).strip() != "":
            prefix_tokens[i] = _count(ptok, name, line, "prefix_tokens", 0)
        if prefix_tokens[i] > inputs[i]:
            raise WorkloadError(f"{name}: line {line}: prefix_tokens ({prefix_tokens[i]}) exceeds input_tokens ({inputs[i]})")
        if prefix_tokens[i] > 0 and pid is None:
            raise WorkloadError(f"{name}: line {line}: prefix_tokens needs a prefix_id naming the shared prefix")
        prefix_ids.append(pid)
    order = np.argsort(arrival, kind="stable")
    reqs = tuple(Request(i, float(arrival[j]), int(inputs[j]), int(outputs[j]), prefix_ids[j], int(prefix_tokens[j]))
                 for i, j in enumerate(order.tolist()))
    span = reqs[-1].arrival_s - reqs[0].arrival_s
    desc = (f"{len(reqs)} requests replayed from {path.name} over {span:.6g} s, "
            f"mean input {inputs.mean():.0f}, mean output {outputs.mean():.0f}")
    return Workload(reqs, None, desc, name)


def _columns(keys: list[str], name: str, line: int) -> dict[str, str]:
    """Each key's field, checked: no unknown key, none twice, the required ones there."""
    fields: dict[str, str] = {}
    for key in keys:
        if key in IGNORED:
            continue
        field = key if key in FIELDS else ALIASES.get(key)
        if field is None:
            raise WorkloadError(f"{name}: line {line}: unknown field {key!r}; a trace has {', '.join(FIELDS)} "
                                "(or Vidur's arrived_at, num_prefill_tokens, num_decode_tokens)")
        if field in fields.values():
            raise WorkloadError(f"{name}: line {line}: {key!r} gives {field} a second time")
        fields[key] = field
    missing = [f for f in REQUIRED if f not in fields.values()]
    if missing:
        raise WorkloadError(f"{name}: line {line}: missing field {missing[0]}; a trace has {', '.join(REQUIRED)}"
                            " and optionally prefix_id, prefix_tokens")
    return fields


def _csv_rows(text: str, name: str) -> list[tuple[int, dict]]:
    lines = text.splitlines()
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise WorkloadError(f"{name}: the trace is empty; a .csv trace starts with a header line "
                            f"({', '.join(REQUIRED)})")
    keys = [h.strip() for h in header]
    fields = _columns(keys, name, 1)
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(keys):
            raise WorkloadError(f"{name}: line {line}: {len(values)} values for {len(keys)} columns")
        rows.append((line, {fields[k]: v for k, v in zip(keys, values) if k in fields}))
    return rows


def _jsonl_rows(text: str, name: str) -> list[tuple[int, dict]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise WorkloadError(f"{name}: line {line}: not JSON ({e.msg}); a .jsonl trace has one object a line") from None
        if not isinstance(obj, dict):
            raise WorkloadError(f"{name}: line {line}: expected an object with {', '.join(REQUIRED)}, got {type(obj).__name__}")
        fields = _columns(list(obj), name, line)
        rows.append((line, {fields[k]: v for k, v in obj.items() if k in fields}))
    return rows


def _seconds(v: object, name: str, line: int) -> float:
    try:
        t = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t >= 0):
        raise WorkloadError(f"{name}: line {line}: arrival_s must be a number of seconds >= 0, got {v!r}")
    return t


def _count(v: object, name: str, line: int, field: str, least: int) -> int:
    """An integer (``12`` or ``12.0``, as pandas writes integer columns with gaps) >= least."""
    try:
        x = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x == int(x) and x >= least):
        raise WorkloadError(f"{name}: line {line}: {field} must be an integer >= {least}, got {_show(v)}")
    return int(x)


def _show(v: object) -> str:
    return str(v).strip() if isinstance(v, (int, float, str)) and not isinstance(v, bool) else repr(v)
