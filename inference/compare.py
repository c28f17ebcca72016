"""``rduflow compare``: one workload on several targets, side by side."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from rduflow.compiler.loading import OutputFiles
from rduflow.compiler.target import load_arch
from .config import RunConfig
from .errors import LlmSimError
from .result import report_dict
from .run import Run, simulate_llm

_TARGET = re.compile(r"(?P<arch>[^:]+)(?::(?P<n>\d+))?")
COLUMNS = ("target", "TTFT ms", "ITL ms", "tokens/s/user", "aggregate tokens/s", "HBM use", "HBM GB/s per device",
           "decode J/token", "$/Mtok output")


def parse_target(text: str) -> tuple[str, int | None]:
    m = _TARGET.fullmatch(text.strip())
    if not m or (m.group("n") is not None and int(m.group("n")) < 1):
        raise LlmSimError(f"--target takes ARCH or ARCH:N (e.g. sn40l:16, h100-sxm:8), got {text!r}")
    load_arch(m.group("arch"))  # unknown names fail here, before anything runs
    return m.group("arch"), int(m.group("n")) if m.group("n") else None


def compare(targets: list[tuple[str, int | None]], config: Callable[[str, int | None], RunConfig],
            progress: bool = False) -> list[Run]:
    if not targets:
        raise LlmSimError("compare needs at least one --target")
    return [simulate_llm(config(arch, n), progress=progress) for arch, n in targets]


def rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        d = report_dict(run)
        itl = d["itl_ms"]
        hbm = d["phases"]["decode"]["bandwidth"].get("hbm") if d["phases"]["decode"] else d["bandwidth"].get("hbm")
        out.append([
            f"{d['arch']} x {d['sockets']}",
            f"{d['ttft_ms']:.2f}",
            f"{itl['mean']:.3f}" if itl else "-",
            f"{d['tokens_per_s_per_user']:.1f}" if d["tokens_per_s_per_user"] else "-",
            f"{d['throughput_tokens_per_s']:.1f}",
            f"{100 * hbm['fraction_of_peak']:.0f}%" if hbm else "-",
            f"{hbm['achieved_gb_s']:.0f}" if hbm else "-",
            _number(d["energy"]["j_per_token"]["decode"] if d["energy"] else None),
            _number(d["cost"]["usd_per_mtok_output"]),
        ])
    return out


def _number(x: float | None) -> str:
    return f"{x:.3g}" if x is not None else "-"


def markdown(runs: list[Run]) -> str:
    cfg = runs[0].config
    head = (f"{runs[0].model}: batch {cfg.batch}, prompt {cfg.prompt}, {cfg.gen} generated, {cfg.weights} weights"
            + (f", speculative decoding ({cfg.spec.describe()})" if cfg.spec else ""))
    lines = [head, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(runs)]
    lines += ["", ("ITL is the mean over the generated tokens; HBM use is the decode phase's achieved bandwidth "
                   "per device as a fraction of its peak; decode J/token is all devices' energy (host included "
                   "unless --no-host-power) per decoded token, and $/Mtok output the decode time's price "
                   "(docs/energy.md); '-' where the target has no power model or price.")]
    return "\n".join(lines)


def write_outputs(runs: list[Run], table: Path, plot: Path) -> str:
    """Write the table and the plot together: both files, or neither (temporary files renamed at the end)."""
    from .report.figures import compare_figure

    text = markdown(runs)
    with OutputFiles() as files:
        files.write(table, lambda f: f.write((text + "\n").encode("utf-8")))
        files.write(plot, lambda f: compare_figure(runs).savefig(f, dpi=110, format=plot_format(plot)))
    return text


def plot_format(plot: Path) -> str:
    """The image format a plot's file name asks for (matplotlib's, by suffix; none: png)."""
    from matplotlib.figure import Figure

    fmt = plot.suffix[1:].lower() or "png"
    supported = Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise LlmSimError(f"--plot {plot}: matplotlib cannot write .{fmt} images (it writes "
                          f"{', '.join('.' + k for k in sorted(supported))})")
    return fmt
