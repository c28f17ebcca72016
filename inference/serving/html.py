"""The serving report as one self-contained HTML file: a table comparing the runs, each run's
engine and latency tables, and the figures of ``figures.py`` as inline PNGs (no scripts, no
external resources), on the page template of the simulate report (``inference/report``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rduflow.compiler.loading import write_atomically
from rduflow.inference.report.html import image, page, table

from . import figures
from .metrics import Slo
from .report import report_dict
from .serve import ServeResult

FIGURES = (("Latency distributions", figures.latency_cdfs),
           ("Latency against time", figures.latency_over_time),
           ("Load over time", figures.load_over_time),
           ("Throughput against latency", figures.throughput_latency))


def render_html(results: list[ServeResult], slo: Slo | None = None) -> str:
    reports = [report_dict(r, slo) for r in results]
    models = sorted({d["model"] for d in reports})
    title = f"rduflow serve: {', '.join(models)}" if models else "rduflow serve: no runs"
    parts = ["<h2>Runs</h2>", _overview(results, reports)] if results else ["<p>No run finished.</p>"]
    for i, (r, d) in enumerate(zip(results, reports)):
        parts += [f"<h2 id=\"run-{i + 1}\">{_e(figures.run_label(i, r))}</h2>",
                  table(["setting", "value"], _setup(d), f"setup-{i + 1}"),
                  table(["ms", "mean", "p50", "p90", "p99"], _latencies(d), f"latency-{i + 1}"),
                  table(["throughput", "value"], _throughputs(d), f"throughput-{i + 1}")]
    for k, (heading, make) in enumerate(FIGURES):
        fig = make(results) if results else None
        if fig is not None:
            parts += [f"<h2>{_e(heading)}</h2>", image(fig, f"figure-{k}", heading)]
    return page(title, parts)


def write_html(results: list[ServeResult], path: str | Path, slo: Slo | None = None) -> None:
    """Write the report through a temporary file and a rename (never a half-written report)."""
    text = render_html(results, slo)
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _overview(results: list[ServeResult], reports: list[dict[str, Any]]) -> str:
    slo = any(d["goodput"] for d in reports)  # the goodput column only with --slo
    rows = []
    for i, (r, d) in enumerate(zip(results, reports)):
        t, g = d["throughput"], d["goodput"]
        rows.append((f"{i + 1}", f"{r.arch}:{r.devices}", d["scheduler"], d["workload"]["description"],
                     _f(t["requests_per_s"], 2), _f(t["output_tokens_per_s"], 0),
                     _f(d["ttft_ms"]["p50"]), _f(d["ttft_ms"]["p99"]), _f(d["tpot_ms"]["p50"]),
                     _f(d["tpot_ms"]["p99"]), _f(d["e2e_ms"]["p50"]),
                     *([_f(g["requests_per_s"], 2) if g else "-"] if slo else []),
                     "yes" if d["overload"]["overloaded"] else "no"))
    return table(["run", "target", "scheduler", "workload", "req/s", "output tok/s", "TTFT p50 ms", "TTFT p99 ms",
                  "TPOT p50 ms", "TPOT p99 ms", "E2E p50 ms", *(["goodput req/s"] if slo else []), "overloaded"],
                 rows, "runs")


def _setup(d: dict[str, Any]) -> list[tuple[str, str]]:
    kv, q, e, st, w = d["kv_cache"], d["requests"], d["engine"], d["steps"], d["workload"]
    return [("model", d["model"]), ("target", f"{d['devices']} x {d['arch']} ({d['arch_kind']})"),
            ("scheduler", f"{d['scheduler']}: max_num_batched_tokens {e['max_num_batched_tokens']}, max_num_seqs "
                          f"{e['max_num_seqs']}, block_size {e['block_size']}, chunked prefill "
                          f"{'on' if e['enable_chunked_prefill'] else 'off'}, prefix caching "
                          f"{'on' if e['enable_prefix_caching'] else 'off'}"),
            ("workload", w["description"] + (f" ({w['source']})" if w["source"] else "")),
            ("KV cache", f"{kv['tokens']:,} tokens in {kv['blocks']:,} blocks ({kv['gib_per_device']:.1f} GiB per "
                         f"device), at most {kv['max_blocks_used']:,} used; prefix-cache hit rate "
                         f"{100 * kv['prefix_cache_hit_rate']:.0f}%"),
            ("requests", f"{q['completed']} completed, {q['rejected']} rejected, {q['preempted']} preempted "
                         f"({q['preemptions']} preemptions)"),
            ("steps", f"{st['count']:,}, mean batch {st['mean_batch']:.1f} sequences / {st['mean_tokens']:.0f} tokens, "
                      f"at most {st['max_waiting']} waiting"),
            ("overloaded", f"yes: the queue grew by {d['overload']['queue_growth_per_s']:.2f} requests/s"
                           if d["overload"]["overloaded"] else "no")]


def _latencies(d: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(name, *(_f(d[key][s]) for s in ("mean", "p50", "p90", "p99")))
            for name, key in (("TTFT", "ttft_ms"), ("ITL", "itl_ms"), ("TPOT", "tpot_ms"), ("E2E", "e2e_ms"),
                              ("queue", "queue_ms"))]


def _throughputs(d: dict[str, Any]) -> list[tuple[str, str]]:
    t, g = d["throughput"], d["goodput"]
    rows = [("duration", f"{t['duration_s']:.2f} s"), ("requests/s", _f(t["requests_per_s"], 3)),
            ("output tokens/s", f"{_f(t['output_tokens_per_s'], 1)} ({_f(t['output_tokens_per_s_per_device'], 1)} "
                                "per device)"),
            ("input tokens/s", _f(t["input_tokens_per_s"], 1)), ("total tokens/s", _f(t["total_tokens_per_s"], 1))]
    if g:
        rows.append((f"goodput ({g['slo']})", f"{_f(g['requests_per_s'], 3)} req/s, "
                                              f"{_f(None if g['fraction'] is None else 100 * g['fraction'], 1)}% "
                                              "of requests meet it"))
    return rows


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _e(s: str) -> str:
    return html.escape(s, quote=True)
