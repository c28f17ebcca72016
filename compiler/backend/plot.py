"""A picture of a placed section: which unit sits on which tile, AGCUs, and link load."""

from __future__ import annotations

from pathlib import Path

from rduflow.ir import Operation
from rduflow.compiler.target import RduArch

from .route import link_loads


def plot_section(section: Operation, arch: RduArch, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    g = arch.grid
    fig, ax = plt.subplots(figsize=(max(6, g.cols / 4), max(5, g.rows / 4)))
    for r in range(g.rows):
        for c in range(g.cols):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#f4f4f4" if arch.is_pcu_site(r, c) else "#e8e8ee",
                                   edgecolor="white", linewidth=0.3))
    cmap = plt.get_cmap("tab20")
    units = [op for op in section.regions[0].ops if op.opname in ("placed.compute", "placed.buffer")]
    for i, op in enumerate(units):
        color = cmap(i % 20) if op.opname == "placed.compute" else "#9a9a9a"
        for r, c in op.attrs["coords"]:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=color, edgecolor="black" if
                                   op.opname == "placed.compute" else "none", linewidth=0.3))
    load = link_loads(section, by_phase=True)
    top = max(load.values(), default=0)
    for (r0, c0, r1, c1), nb in load.items():
        ax.plot([c0, c1], [r0, r1], color="#c0392b", alpha=0.25 + 0.75 * nb / top, linewidth=0.5 + 2.5 * nb / top)
    for i in range(arch.agcu.count):
        r, c = arch.agcu_coord(i)
        ax.plot(c, r, marker="s", color="black", markersize=5)
    ax.set_xlim(-1, g.cols)
    ax.set_ylim(g.rows, -1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    computes = sum(1 for op in units if op.opname == "placed.compute")
    ax.set_title(f"{section.attrs['name']} (x{section.attrs['repeat']}): {computes} compute units in colour, "
                 f"{len(units) - computes} buffers in grey,\nAGCUs black, links red by load "
                 f"(most loaded: {top / 1e6:.2f} MB per call)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
