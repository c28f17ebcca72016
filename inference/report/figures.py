"""Figures of a run, as matplotlib ``Figure`` objects (no pyplot state, no display needed).

* ``timeline``: the sections (RDU) or kernels (GPU) of the prefill step and of one decode step;
* ``bandwidth``: memory and link bandwidth over those two steps;
* ``heatmap``: the busy fraction of every tile of the grid in a decode step (RDU), or of
  every kernel of every layer (GPU, which has no tile grid to show);
* ``itl``: ITL against position, simulated points and interpolation, with the memory roofline;
* ``roofline``: achieved throughput against arithmetic intensity for prefill and decode.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure
from rduflow.inference.backends import Step, section_key
from rduflow.inference.result import report_dict
from rduflow.inference.run import Run

_COLORS = {"section": "#4c72b0", "gemm": "#4c72b0", "attention": "#dd8452", "bmm": "#dd8452",
           "pointwise": "#55a868", "all_reduce": "#c44e52", "all_gather": "#c44e52"}


def decode_step(run: Run) -> tuple[int, Step] | None:
    """The decode step the per-step figures show: the simulated one nearest the middle."""
    steps = run.decode_steps()
    if not steps:
        return None
    mid = (steps[0][0] + steps[-1][0]) / 2
    return min(steps, key=lambda cs: abs(cs[0] - mid))


def _steps(run: Run) -> list[tuple[str, Step]]:
    out = [("prefill", run.prefill)]
    d = decode_step(run)
    if d is not None:
        what = "verify" if run.config.spec else "decode"
        out.append((f"{what} step at context {d[0]}", d[1]))
    return out


def timeline(run: Run) -> Figure:
    steps = _steps(run)
    fig = Figure(figsize=(10, 1.6 + 1.4 * len(steps)), layout="constrained")
    axes = fig.subplots(len(steps), 1, squeeze=False)[:, 0]
    for ax, (title, step) in zip(axes, steps):
        names = list(dict.fromkeys(section_key(s.name) for s in step.timeline))
        rows = {n: i for i, n in enumerate(names[:24])}
        for s in step.timeline:
            row = rows.get(section_key(s.name), len(rows) - 1)
            ax.barh(row, (s.end_s - s.start_s) * 1e3, left=s.start_s * 1e3, height=0.8,
                    color=_COLORS.get(s.kind, "#8172b3"), edgecolor="none")
        ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ms")
        ax.set_title(f"{title}: {step.time_s * 1e3:.3f} ms", fontsize=10, loc="left")
    return fig


def bandwidth(run: Run) -> Figure:
    steps = _steps(run)
    fig = Figure(figsize=(10, 1.4 + 1.6 * len(steps)), layout="constrained")
    axes = fig.subplots(len(steps), 1, squeeze=False)[:, 0]
    for ax, (title, step) in zip(axes, steps):
        for tier, bins in sorted(step.bandwidth_timeline.items()):
            if not bins:
                continue
            arr = np.asarray(bins)
            x = np.repeat(np.append(arr[:, 0], arr[-1, 1]), 2)[1:-1] * 1e3
            y = np.repeat(arr[:, 2], 2)
            ax.plot(x, y, label=tier, lw=1.2)
            peak = step.peak_gb_s.get(tier)
            if peak:
                ax.axhline(peak, ls=":", lw=0.8, color=ax.lines[-1].get_color())
        ax.set_ylabel(f"GB/s per {run.device}")
        ax.set_xlabel("ms")
        ax.set_title(f"{title} (dotted: peak)", fontsize=10, loc="left")
        if ax.lines:
            ax.legend(fontsize=8, loc="upper right")
    return fig


def heatmap(run: Run) -> Figure:
    d = decode_step(run)
    c, step = d if d is not None else (None, run.prefill)
    where = f"decode step at context {c}" if c is not None else "prefill"
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    if step.heatmap is not None:
        top = max(0.05, float(step.heatmap.max()))  # a memory-bound step keeps tiles mostly idle: scale to it
        im = ax.imshow(step.heatmap, cmap="viridis", vmin=0, vmax=top, aspect="auto", interpolation="nearest")
        ax.set_title(f"busy fraction of each tile, {where} (PCUs and PMUs at their grid positions)", fontsize=10)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    else:
        grid, layers, kinds = _kernel_grid(step)
        im = ax.imshow(grid, cmap="viridis", vmin=0, aspect="auto", interpolation="nearest")
        ax.set_title(f"share of step time per kernel and layer, {where}", fontsize=10)
        ax.set_yticks(range(len(kinds)), kinds, fontsize=7)
        ax.set_xlabel("layer" if layers else "")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return fig


def _kernel_grid(step: Step) -> tuple[np.ndarray, list[int], list[str]]:
    """Rows: kernel names with the layer number taken out; columns: layers."""
    cells: dict[tuple[str, int], float] = {}
    for s in step.timeline:
        m = re.search(r"\.(\d+)\.", s.name)
        layer = int(m.group(1)) if m else -1
        key = re.sub(r"\.\d+\.", ".*.", s.name)
        cells[(key, layer)] = cells.get((key, layer), 0.0) + s.end_s - s.start_s
    kinds = list(dict.fromkeys(k for k, _ in cells))
    layers = sorted({layer for _, layer in cells if layer >= 0})
    cols = layers or [-1]
    grid = np.zeros((len(kinds), len(cols)))
    for (k, layer), t in cells.items():
        if layer in cols:
            grid[kinds.index(k), cols.index(layer)] = t / step.time_s if step.time_s else 0.0
    return grid, layers, kinds


def itl(run: Run) -> Figure:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    if len(run.itl_s):
        ax.plot(run.positions, run.itl_s * 1e3, lw=1.5, label="ITL (interpolated)")
        d = report_dict(run)["itl_ms"]
        xs = [s["position"] for s in d["samples"]]
        ax.plot(xs, [s["itl_ms"] for s in d["samples"]], "o", ms=4, label="simulated positions")
        ax.plot(xs, [s["memory_bound_ms"] for s in d["samples"]], "--", lw=1, label="memory roofline")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("ms per output token")
    ax.set_title("inter-token latency against position", fontsize=10)
    return fig


def roofline(run: Run) -> Figure:
    d = report_dict(run)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    peak = d["bounds"]["prefill"]["flops"] / (d["bounds"]["prefill"]["compute_ms"] * 1e-3) / run.devices \
        if d["bounds"]["prefill"]["compute_ms"] else 0.0
    points = []
    for phase in ("prefill", "decode"):
        ph = d["phases"][phase]
        if not ph or not ph["time_ms"]:
            continue
        mem = next(iter(ph["bandwidth"].values()), None)
        if mem is None or not mem["bytes"]:
            continue
        intensity = ph["flops_per_device"] / mem["bytes"]
        achieved = ph["flops_per_device"] / (ph["time_ms"] * 1e-3)
        points.append((phase, intensity, achieved, mem["peak_gb_s"]))
    bw = points[0][3] * 1e9 if points else 1.0
    xs = np.logspace(-1, 4, 200)
    if peak:
        ax.loglog(xs, np.minimum(peak, xs * bw) / 1e12, color="k", lw=1.2, label=f"roofline ({run.device})")
    for phase, x, y, _ in points:
        ax.loglog([x], [y / 1e12], "o", ms=7, label=f"{phase}: {y / 1e12:.1f} TFLOPS at {x:.1f} FLOP/B")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of memory traffic)")
    ax.set_ylabel(f"TFLOPS per {run.device}")
    ax.set_title("roofline", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def compare_figure(runs: list[Run]) -> Figure:
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 4)
    labels = [f"{r.arch_name}\nx{r.devices}" for r in runs]
    dicts = [report_dict(r) for r in runs]
    hbm = [((d["phases"]["decode"] or d["phases"]["prefill"])["bandwidth"].get("hbm") or {}).get("fraction_of_peak", 0.0)
           for d in dicts]
    metrics = [("TTFT (ms)", [d["ttft_ms"] for d in dicts]),
               ("tokens/s per user", [d["tokens_per_s_per_user"] or 0.0 for d in dicts]),
               ("aggregate tokens/s", [d["throughput_tokens_per_s"] for d in dicts]),
               ("decode HBM use (% of peak)", [100 * f for f in hbm])]
    for ax, (title, values) in zip(axes, metrics):
        ax.bar(range(len(runs)), values, color="#4c72b0")
        ax.set_xticks(range(len(runs)), labels, fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"{runs[0].model}: batch {runs[0].config.batch}, prompt {runs[0].config.prompt}, "
                 f"{runs[0].config.gen} generated", fontsize=10)
    return fig


ALL = (("Where the time goes: sections over time", timeline), ("Bandwidth over time", bandwidth),
       ("Utilisation heatmap", heatmap), ("ITL against position", itl), ("Roofline", roofline))
