"""``rduflow compile``: a model (preset, config.json, ONNX file or IR text) to a placed program."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rduflow.compiler.loading import LoadError, OutputFiles, check_folder, load_module, save_module
from rduflow.ir import Module

from rduflow.compiler.backend.errors import CompileError
from rduflow.compiler.backend.fuse import MODES
from rduflow.inference.cli.ir import add_print_ir_args, ir_printer
from rduflow.inference.cli.model_arg import MODEL_HELP, add_dim_arg, model_argument
from rduflow.inference.dim_roles import assign_roles, unbound_hint
from rduflow.inference.model_source import ModelSource


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model to a placed program for an RDU",
                       description="Compile MODEL (a model-library preset, a Hugging Face config.json, an ONNX "
                                   "file or IR text) "
                                   "for SOCKETS sockets of ARCH: fuse, section, shard, place and route. Writes the "
                                   "placed program (placed.rdu) and a placement summary (summary.txt, summary.json) "
                                   "to DIR.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--arch", required=True, help="architecture: a preset (rduflow arch list) or a TOML/YAML file")
    p.add_argument("--sockets", type=int, default=1, help="sockets to shard the model over (default 1)")
    p.add_argument("--fusion", choices=MODES, default="auto",
                   help="auto: decoder layers and attention fused (default); none: one operator per section")
    p.add_argument("--batch", type=int, help="value of the batch dimension (default 1 when the model has one)")
    p.add_argument("--seq", type=int, help="value of the sequence dimension")
    p.add_argument("--past", type=int, help="value of the past (KV cache) length")
    add_dim_arg(p)
    p.add_argument("--variant", choices=("prefill", "decode"),
                   help="for a preset: which graph (default: decode when --past is given, else prefill)")
    p.add_argument("--dtype", default="bf16", help="for a preset: weight precision (default bf16)")
    p.add_argument("--ideal-network", action="store_true", help="route nothing over the mesh (no link limits)")
    p.add_argument("--seed", type=int, default=0, help="seed of the placement's annealing (default 0)")
    p.add_argument("--plot", action="store_true", help="also draw each distinct section's tile grid (PNG)")
    add_print_ir_args(p)
    p.add_argument("--time-passes", action="store_true", help="print the time each pass took (stderr)")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="folder to write the results to")
    p.set_defaults(func=cmd_compile)


def load_model(source: ModelSource, variant: str | None, dtype: str, past: int | None) -> Module:
    """An ONNX or IR file (weights as shapes: compiling reads no weight data) with its dimensions
    named by their roles, or a preset or config.json built as ONNX."""
    from rduflow.compiler.frontend.onnx import import_onnx
    from rduflow.models import build_onnx
    from rduflow.models.presets import is_tiny

    if source.is_file_model:
        return assign_roles(load_module(source.path, shapes_only=True), dict(source.dims), str(source.path))
    if source.dims:
        raise CompileError(f"--dim: {source.spec} is built by rduflow with the dimensions batch, seq and past; "
                           "--dim applies to ONNX and IR files (give --batch, --seq, --past)")
    variant = variant or ("decode" if past is not None else "prefill")
    # Presets other than the tiny ones are built with shape-only weights: there is no data to read.
    return import_onnx(build_onnx(source.config, variant, dtype=dtype), shapes_only=not is_tiny(source.config))


def bindings(module: Module, args: argparse.Namespace) -> dict[str, int]:
    out = {k: v for k, v in (("batch", args.batch), ("seq", args.seq), ("past", args.past)) if v is not None}
    if "batch" in module.symbols and "batch" not in out:
        out["batch"] = 1
    left = sorted(module.symbols - set(out))
    if left:  # a placed program has concrete shapes
        raise CompileError(f"the model's shapes use {', '.join(left)} without a value: give {unbound_hint(left)}")
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    from rduflow.compiler.backend.compile import compile_model
    from rduflow.compiler.backend.plot import plot_section
    from rduflow.compiler.backend.distinct import distinct_sections

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CompileError(f"-o {out}: exists and is not a folder")
    check_folder(out, "-o")
    module = load_model(model_argument(args), args.variant, args.dtype, args.past)
    printer = ir_printer(args)
    compiled = compile_model(module, args.arch, sockets=args.sockets, fusion=args.fusion,
                             bindings=bindings(module, args), ideal_network=args.ideal_network,
                             instruments=[printer] if printer else [], seed=args.seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoadError(f"-o {out}: cannot create the folder: {e.strerror or e}") from None
    text = compiled.summary.to_text()
    with OutputFiles() as files:  # every file of the result, or none
        written = save_module(compiled.placed, out / "placed.rdu", files)
        summary_json = compiled.summary.to_json() + "\n"
        written.append(files.write(out / "summary.json", lambda f: f.write(summary_json.encode())))
        written.append(files.write(out / "summary.txt", lambda f: f.write(text.encode())))
        if args.plot:
            for i, (section, _) in enumerate(distinct_sections(compiled.placed, ())):
                written.append(files.write(out / f"section{i}.png",
                                           lambda f, section=section: plot_section(section, compiled.arch, f)))
    if args.time_passes:
        from rduflow.compiler.passes import format_timings

        sys.stderr.write(format_timings(compiled.records))
    sys.stdout.write(text)
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0
