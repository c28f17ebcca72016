"""Figures of serving runs, as matplotlib ``Figure`` objects (no pyplot state, no display needed).

Every figure overlays all the runs it is given, each in its own colour (``C0``, ``C1``, ... in
run order) and named in one legend below the plots:

* ``latency_cdfs``: the distributions of TTFT, ITL and E2E latency;
* ``latency_over_time``: each request's TTFT and E2E latency against when it was sent;
* ``load_over_time``: KV cache use, batch size and waiting queue, step by step (the report's
  ``time_series``, averaged into at most ``SERIES_POINTS`` points);
* ``throughput_latency``: per target with several runs (several rates), output tokens/s
  against p50 and p99 TPOT and TTFT.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .metrics import distribution
from .report import series, throughput
from .serve import ServeResult

MAX_SCATTER_POINTS = 5_000  # per scatter plot, all runs together: keeps a 10,000-request report small
LOG_SPREAD = 20  # a CDF whose largest value is this many times its smallest gets a log axis
CDF_POINTS = 500  # quantiles drawn per distribution (an ITL sample has one gap per output token)


def run_label(i: int, r: ServeResult) -> str:
    """How figures and tables name run ``i`` (0-based)."""
    return f"{i + 1}. {r.arch}:{r.devices}, {r.engine_config.scheduler}: {r.workload.description}"


def target_key(r: ServeResult) -> tuple:
    """Runs with equal keys differ only in their workload (e.g. one per --rate)."""
    return r.model, r.arch, r.devices, r.engine_config.scheduler


def latency_cdfs(results: list[ServeResult]) -> Figure:
    fig = Figure(figsize=(12, 3.4 + 0.22 * len(results)), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (title, get) in zip(axes, (("TTFT", lambda m: m.ttft_s), ("ITL", lambda m: m.itl_s),
                                       ("E2E latency", lambda m: m.e2e_s))):
        for i, r in enumerate(results):
            x = get(r.metrics)
            x = x[~np.isnan(x)] * 1e3
            if not len(x):
                continue
            q = np.linspace(0, 1, CDF_POINTS + 1)
            ax.plot(np.quantile(x, q), q, color=f"C{i % 10}", lw=1.4, label=run_label(i, r))
        lo = min((line.get_xdata().min() for line in ax.lines), default=0.0)
        hi = max((line.get_xdata().max() for line in ax.lines), default=0.0)
        if lo > 0 and hi > LOG_SPREAD * lo:  # latencies under load span decades: a log axis shows them all
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of " + ("gaps" if title == "ITL" else "requests"))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title} (CDF)", fontsize=10, loc="left")
    _legend(fig, axes[0])
    return fig


def latency_over_time(results: list[ServeResult]) -> Figure:
    fig = Figure(figsize=(12, 3.6 + 0.22 * len(results)), layout="constrained")
    axes = fig.subplots(1, 2)
    per_run = MAX_SCATTER_POINTS // max(1, len(results))
    for i, r in enumerate(results):
        m = r.metrics
        pick = thin(len(m.id), per_run)
        for ax, y in zip(axes, (m.ttft_s * 1e3, m.e2e_s)):
            ax.scatter(m.sent_s[pick], y[pick], s=4, alpha=0.6, color=f"C{i % 10}", edgecolors="none",
                       label=run_label(i, r))
    for ax, (title, unit) in zip(axes, (("TTFT", "ms"), ("E2E latency", "s"))):
        ax.set_xlabel("sent at (s)")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title} of each request against when it was sent", fontsize=10, loc="left")
    _legend(fig, axes[0])
    return fig


def load_over_time(results: list[ServeResult]) -> Figure:
    fig = Figure(figsize=(12, 6.6 + 0.22 * len(results)), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for i, r in enumerate(results):
        s = series(r)
        t = np.asarray(s["t_s"])
        style = {"color": f"C{i % 10}", "lw": 1.2, "label": run_label(i, r)}
        axes[0].plot(t, 100 * np.asarray(s["kv_blocks"]) / max(1, r.run.kv_blocks), **style)
        axes[1].plot(t, s["batch"], **style)
        axes[2].plot(t, s["waiting"], **style)
    for ax, title in zip(axes, ("KV cache blocks used (% of the cache)", "batch size (sequences per step)",
                                "waiting queue (requests)")):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=10, loc="left")
    axes[-1].set_xlabel("time (s)")
    _legend(fig, axes[0])
    return fig


def throughput_latency(results: list[ServeResult]) -> Figure | None:
    """None unless some target has two runs or more."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault(target_key(r), []).append(i)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return None
    fig = Figure(figsize=(12, 4.2 + 0.22 * len(groups)), layout="constrained")
    axes = fig.subplots(1, 2)
    for g, ((model, arch, devices, scheduler), members) in enumerate(groups.items()):
        points = []
        for i in members:
            m, x = results[i].metrics, throughput(results[i])["output_tokens_per_s"]
            if x is None:
                continue
            tpot, ttft = distribution(m.tpot_s), distribution(m.ttft_s)
            points.append((x, i, *(np.nan if d[p] is None else d[p] for d in (tpot, ttft) for p in ("p50", "p99"))))
        points.sort()
        if not points:
            continue
        xs, runs, tpot50, tpot99, ttft50, ttft99 = (np.array(c) for c in zip(*points))
        color = f"C{g % 10}"
        for ax, p50, p99 in ((axes[0], tpot50, tpot99), (axes[1], ttft50, ttft99)):
            ax.plot(xs, p50, "o-", color=color, lw=1.4, label=f"{arch}:{devices} {scheduler} ({model}), p50")
            ax.plot(xs, p99, "s--", color=color, lw=1.2, label=f"{arch}:{devices} {scheduler} ({model}), p99")
            for x, y, i in zip(xs, p99, runs):
                ax.annotate(str(int(i) + 1), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for ax, title in zip(axes, ("TPOT", "TTFT")):
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title} against throughput (numbers: runs)", fontsize=10, loc="left")
    _legend(fig, axes[0])
    return fig


def thin(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices of ``range(n)``, evenly spread (all of them when ``n <= k``)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def _legend(fig: Figure, ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower left", fontsize=8, frameon=False)
