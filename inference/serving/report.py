"""The serving report (schema ``rduflow.serve/1``, docs/report-schema.md) and its summary text."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np

from .memory import GIB
from .metrics import Slo, distribution
from .serve import ServeResult

SCHEMA = "rduflow.serve/1"
SERIES_POINTS = 200  # time series are averaged into at most this many points
# Overload: the waiting queue grew over the second half of the arrivals by more than this
# many requests and this share of all requests.
OVERLOAD_MIN_GROWTH = 10
OVERLOAD_MIN_SHARE = 0.05


def throughput(r: ServeResult) -> dict[str, float | None]:
    m = r.metrics
    if not len(m.id):
        return {"duration_s": 0.0, "requests_per_s": None, "input_tokens_per_s": None, "output_tokens_per_s": None,
                "output_tokens_per_s_per_device": None, "total_tokens_per_s": None}
    duration = float((m.sent_s + m.e2e_s).max() - m.sent_s.min())
    out = float(m.output_tokens.sum()) / duration
    inp = float(m.input_tokens.sum()) / duration
    return {"duration_s": duration, "requests_per_s": len(m.id) / duration, "input_tokens_per_s": inp,
            "output_tokens_per_s": out, "output_tokens_per_s_per_device": out / r.devices,
            "total_tokens_per_s": inp + out}


def overload(r: ServeResult) -> dict[str, Any]:
    """Whether the arrivals outran the engine: the queue still growing while requests came."""
    steps, m = r.run.steps, r.metrics
    if not len(steps.start_s) or not len(m.id):
        return {"overloaded": False, "queue_growth_per_s": 0.0}
    last_send = float(max(m.sent_s.max(), max((x.request.arrival_s for x in r.run.rejected), default=0.0)))
    half = steps.start_s >= last_send / 2
    half &= steps.start_s <= last_send
    if half.sum() < 2:
        return {"overloaded": False, "queue_growth_per_s": 0.0}
    t, q = steps.start_s[half], steps.waiting[half]
    slope = float(np.polyfit(t, q, 1)[0]) if np.ptp(t) > 0 else 0.0
    growth = slope * float(np.ptp(t))
    n = len(m.id) + len(r.run.rejected)
    return {"overloaded": bool(growth > max(OVERLOAD_MIN_GROWTH, OVERLOAD_MIN_SHARE * n)),
            "queue_growth_per_s": slope}


def series(r: ServeResult) -> dict[str, list[float]]:
    s = r.run.steps
    n = len(s.start_s)
    if not n:
        return {k: [] for k in ("t_s", "batch", "tokens", "kv_blocks", "waiting", "preempted")}
    edges = np.linspace(0, n, min(n, SERIES_POINTS) + 1).astype(int)

    def avg(x):
        return [float(x[a:b].mean()) for a, b in zip(edges[:-1], edges[1:])]

    return {"t_s": avg(s.start_s), "batch": avg(s.sequences), "tokens": avg(s.tokens), "kv_blocks": avg(s.kv_blocks),
            "waiting": avg(s.waiting), "preempted": [float(s.preempted[a:b].sum()) for a, b in zip(edges[:-1], edges[1:])]}


def report_dict(r: ServeResult, slo: Slo | None = None) -> dict[str, Any]:
    e, m, b, s = r.engine_config, r.metrics, r.budget, r.run.steps
    thr = throughput(r)
    good = None
    if slo is not None:
        ok = m.meets(slo)
        dur = thr["duration_s"] or 0.0
        good = {"slo": slo.describe(), "requests_per_s": float(ok.sum()) / dur if dur else None,
                "fraction": float(ok.mean()) if len(ok) else None}
    busy = float((s.chip_s + s.host_s + s.load_s + s.switch_s).sum())
    return {
        "schema": SCHEMA,
        "model": r.model,
        "arch": r.arch,
        "arch_kind": r.kind,
        "devices": r.devices,
        "scheduler": e.scheduler,
        "engine": {"max_num_batched_tokens": e.max_num_batched_tokens, "max_num_seqs": e.max_num_seqs,
                   "block_size": e.block_size, "gpu_memory_utilization": e.gpu_memory_utilization,
                   "enable_chunked_prefill": e.enable_chunked_prefill, "enable_prefix_caching": e.enable_prefix_caching,
                   "max_model_len": r.max_model_len,
                   **({"batch_buckets": list(e.batch_buckets), "seq_buckets": list(e.seq_buckets)}
                      if e.scheduler == "buckets" else {})},
        "workload": {"description": r.workload.description, "source": r.workload.source,
                     "requests": len(r.workload.requests), "concurrency": r.workload.concurrency},
        "kv_cache": {"tokens": b.kv_tokens, "blocks": r.run.kv_blocks, "bytes_per_token_per_device": b.kv_bytes_per_token,
                     "gib_per_device": b.kv_bytes_per_token * b.kv_tokens / GIB,
                     "weights_gib_per_device": b.weight_bytes / GIB, "activations_gib_per_device": b.activation_bytes / GIB,
                     "max_blocks_used": int(s.kv_blocks.max()) if len(s.kv_blocks) else 0,
                     "prefix_cache_hit_rate": r.run.prefix_hit_rate,
                     "offload": {"tier": r.run.offload.tier, "tokens": r.run.offload.blocks * r.run.block_size,
                                 "hit_rate": r.run.offload_hit_rate, "load_s": float(s.load_s.sum())}},
        "host_overheads": {"step_ms": r.host.step_s * 1e3, "per_seq_us": r.host.per_seq_s * 1e6,
                           "request_ms": r.host.request_s * 1e3},
        "requests": {"completed": len(m.id), "rejected": len(r.run.rejected),
                     "rejected_reasons": dict(Counter(x.kind for x in r.run.rejected)),
                     "preempted": int((m.preemptions > 0).sum()), "preemptions": int(m.preemptions.sum())},
        "ttft_ms": distribution(m.ttft_s),
        "itl_ms": distribution(m.itl_s),
        "tpot_ms": distribution(m.tpot_s),
        "e2e_ms": distribution(m.e2e_s),
        "queue_ms": distribution(m.queue_s),
        "throughput": thr,
        "goodput": good,
        "steps": {"count": int(len(s.start_s)), "mean_batch": float(s.sequences.mean()) if len(s.sequences) else 0.0,
                  "mean_tokens": float(s.tokens.mean()) if len(s.tokens) else 0.0,
                  "device_s": float(s.chip_s.sum()), "host_s": float(s.host_s.sum()),
                  "kv_load_s": float(s.load_s.sum()),
                  "model_switches": r.run.switches, "switch_s": float(s.switch_s.sum()),
                  "busy_fraction": busy / thr["duration_s"] if thr["duration_s"] else None,
                  "max_waiting": int(s.waiting.max()) if len(s.waiting) else 0},
        "overload": overload(r),
        "time_series": series(r),
        "step_table": {"points": r.points_total, "simulated_now": r.points_simulated, "path": r.table_path},
        "simulation": {"wall_s": r.wall_s},
    }


def to_json(reports: list[dict[str, Any]]) -> str:
    return json.dumps(reports[0] if len(reports) == 1 else reports, indent=1)


def summary(d: dict[str, Any]) -> str:
    def dist(name: str, key: str) -> str:
        x = d[key]
        if x["mean"] is None:
            return f"  {name:<6} -"
        return f"  {name:<6} mean {x['mean']:9.2f}  p50 {x['p50']:9.2f}  p90 {x['p90']:9.2f}  p99 {x['p99']:9.2f} ms"

    t, q, kv = d["throughput"], d["requests"], d["kv_cache"]
    lines = [f"{d['model']} on {d['devices']} x {d['arch']}, {d['scheduler']} scheduler: {d['workload']['description']}",
             f"  KV cache {kv['tokens']:,} tokens ({kv['gib_per_device']:.1f} GiB per device), prefix-cache hit rate "
             f"{100 * kv['prefix_cache_hit_rate']:.0f}%",
             f"  requests: {q['completed']} completed, {q['rejected']} rejected"
             + (" (" + ", ".join(f"{n} {why}" for why, n in q["rejected_reasons"].items()) + ")" if q["rejected"] else "")
             + f", {q['preemptions']} preemptions",
             dist("TTFT", "ttft_ms"), dist("ITL", "itl_ms"), dist("TPOT", "tpot_ms"), dist("E2E", "e2e_ms"),
             dist("queue", "queue_ms")]
    if t["requests_per_s"]:
        lines.append(f"  throughput {t['requests_per_s']:.2f} req/s, {t['output_tokens_per_s']:.0f} output tokens/s "
                     f"({t['output_tokens_per_s_per_device']:.0f} per device), {t['input_tokens_per_s']:.0f} input tokens/s")
    if d["goodput"] and d["goodput"]["requests_per_s"] is not None:
        g = d["goodput"]
        lines.append(f"  goodput {g['requests_per_s']:.2f} req/s ({100 * g['fraction']:.0f}% of requests meet {g['slo']})")
    st = d["steps"]
    lines.append(f"  {st['count']:,} steps, mean batch {st['mean_batch']:.1f} sequences / {st['mean_tokens']:.0f} tokens; "
                 f"device {st['device_s']:.3g} s, host {st['host_s']:.3g} s"
                 + (f"; {st['model_switches']} model switches, {st['switch_s']:.3g} s" if st["model_switches"] else ""))
    if d["overload"]["overloaded"]:
        lines.append(f"  OVERLOADED: the queue grew by {d['overload']['queue_growth_per_s']:.2f} requests/s while "
                     "requests arrived (the arrival rate exceeds what the target serves)")
    tab = d["step_table"]
    lines.append(f"  step table: {tab['points']} simulated steps ({tab['simulated_now']} new); "
                 f"{d['simulation']['wall_s']:.1f} s")
    return "\n".join(lines)


def comparison(reports: list[dict[str, Any]]) -> str:
    """Runs side by side, a row each (several targets or rates)."""
    head = ("target", "scheduler", "rate/s", "req/s", "out tok/s/device", "TTFT p50", "TTFT p99", "TPOT p50",
            "TPOT p99", "E2E p99", "goodput/s")
    rows = []
    for d in reports:
        t = d["throughput"]

        def ms(key: str, p: str) -> str:
            v = d[key][p]
            return "-" if v is None else f"{v:.1f}"

        g = d["goodput"]
        rows.append((f"{d['arch']} x {d['devices']}", d["scheduler"], d["workload"]["description"].split(",")[1].strip()
                     if "," in d["workload"]["description"] else "-",
                     f"{t['requests_per_s']:.2f}" if t["requests_per_s"] else "-",
                     f"{t['output_tokens_per_s_per_device']:.0f}" if t["output_tokens_per_s_per_device"] else "-",
                     ms("ttft_ms", "p50"), ms("ttft_ms", "p99"), ms("tpot_ms", "p50"), ms("tpot_ms", "p99"),
                     ms("e2e_ms", "p99"), f"{g['requests_per_s']:.2f}" if g and g["requests_per_s"] is not None else "-"))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head) + "   (latencies in ms)", *(line(r) for r in rows)])


def request_rows(r: ServeResult, run: int = 0) -> list[dict[str, Any]]:
    """One record per request: its times (ms), each inter-token gap, or why it was rejected."""
    head = {"run": run, "target": f"{r.arch}:{r.devices}", "workload": r.workload.description}
    rows = []
    for seq in r.run.sequences:
        times = np.asarray(seq.token_times)
        rows.append({**head, "id": seq.req.id, "sent_s": seq.sent_s, "input_tokens": seq.req.input_tokens,
                     "output_tokens": seq.req.output_tokens, "prefix_id": seq.req.prefix_id,
                     "queue_ms": (seq.first_scheduled_s - seq.sent_s) * 1e3, "ttft_ms": (times[0] - seq.sent_s) * 1e3,
                     "e2e_ms": (seq.finished_s - seq.sent_s) * 1e3, "preemptions": seq.preemptions,
                     "itl_ms": [round(float(x), 6) for x in np.diff(times) * 1e3]})
    for x in r.run.rejected:
        rows.append({**head, "id": x.request.id, "sent_s": x.request.arrival_s, "rejected": x.reason})
    rows.sort(key=lambda d: d["id"])
    return rows


def write_requests(results: list[ServeResult], path: str) -> None:
    from rduflow.compiler.loading import write_atomically

    def write(f) -> None:
        for i, r in enumerate(results):
            for row in request_rows(r, i):
                f.write((json.dumps(row) + "\n").encode())

    write_atomically(path, write)
