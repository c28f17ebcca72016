"""``rduflow arch list`` and ``rduflow arch show NAME|FILE``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rduflow.ir.dtypes import DType

from rduflow.compiler.target import GpuArch, RduArch, list_arches, load_arch


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("arch", help="list and show architecture presets",
                              description="Architecture presets (RDU and GPU) and user architecture files.")
    sub = p.add_subparsers(dest="arch_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list the bundled presets")
    ls.set_defaults(func=_list)
    show = sub.add_parser("show", help="validate and print a preset or a TOML/YAML file")
    show.add_argument("name", metavar="NAME|FILE", help="a preset name (see 'rduflow arch list') or a file")
    show.add_argument("--json", action="store_true", help="print the validated fields as JSON")
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    rows = [(n, a.kind, a.description) for n in list_arches() for a in [load_arch(n)]]
    width = max(len(n) for n, _, _ in rows)
    for name, kind, desc in rows:
        default = "  (default)" if name == "sn40l" else ""
        print(f"{name:<{width}}  {kind:<3}  {desc}{default}")
    return 0


def _show(args: argparse.Namespace) -> int:
    arch = load_arch(args.name)
    if args.json:
        print(json.dumps(arch.model_dump(), indent=2))
        return 0
    print("\n".join(_toml_lines(arch.model_dump())))
    print()
    print("# derived")
    for line in _derived(arch):
        print(f"# {line}")
    return 0


def _toml_lines(data: dict[str, Any], prefix: str = "") -> list[str]:
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]"] + _toml_lines(v, f"{prefix}{k}.")
    return lines


def _value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def _derived(arch: RduArch | GpuArch) -> list[str]:
    if isinstance(arch, GpuArch):
        return [f"tensor {k}: {v:g} TFLOPS" for k, v in arch.tensor_tflops.items()] + [
            f"HBM: {arch.hbm.bandwidth_gb_s:g} GB/s, {arch.hbm.capacity_gib:g} GiB"]
    out = []
    for name in arch.pcu.systolic_flops_per_cycle:
        out.append(f"peak {name}: {arch.peak_flops(DType(name)) / 1e12:.1f} TFLOPS "
                   f"({arch.pcu.count} PCUs x {max(arch.systolic_rate(DType(name)), arch.simd_rate(DType(name))):g} "
                   f"FLOP/cycle x {arch.clock_ghz:g} GHz)")
    sram_tb_s = arch.pmu.count * (arch.pmu.read_bytes_per_cycle + arch.pmu.write_bytes_per_cycle) * arch.clock_ghz / 1e3
    out.append(f"on-chip SRAM: {arch.sram_bytes / 2**20:g} MiB ({arch.pmu.count} PMUs x {arch.pmu.capacity_kib:g} KiB), "
               f"{sram_tb_s:g} TB/s read + write")
    out.append(f"mesh link: {arch.mesh.link_bytes_per_cycle * arch.clock_ghz:g} GB/s; "
               f"AGCU: {arch.agcu.bytes_per_cycle * arch.clock_ghz:g} GB/s each")
    for tier in ("hbm", "ddr"):
        t = getattr(arch.memory, tier)
        if t is not None:
            out.append(f"{tier}: {t.bandwidth_gb_s:g} GB/s, {t.capacity_gib:g} GiB, {t.latency_ns:g} ns")
    coords = ", ".join(f"{i}:[{r},{c}]" for i, (r, c) in enumerate(arch.agcu_coord(i) for i in range(arch.agcu.count)))
    out.append(f"AGCU switches: {coords}")
    return out
