"""Compiler sub-commands: ``opt`` (run passes, mlir-opt style), ``run`` (interpret), ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rduflow.ir import Module, print_module, run
from rduflow.ir.errors import RduflowError

from rduflow.compiler.loading import LoadError, check_writable, load_module, save_arrays, save_module
from rduflow.compiler.passes import (ALL, PASSES, IRPrinter, PassContext, PassManager, available_passes, format_timings,
                                     parse_pipeline)


class CommandError(RduflowError):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("opt", help="run a pass pipeline over a model and print or save the IR",
                       description="Parse FILE (IR text or ONNX), run the passes of PIPELINE, verifying after "
                                   "each, and print the result (or write it with -o).")
    p.add_argument("file", nargs="?", help="a .rdu IR text file or an ONNX model")
    _arch_arg(p)
    _pipeline_args(p)
    p.add_argument("-o", "--output", metavar="OUT", help="write the IR here (in-memory weights go to OUT's .npz) "
                                                         "instead of printing it")
    p.add_argument("--shapes-only", action="store_true", help="import ONNX weights as shapes only, without data")
    p.add_argument("--list-passes", action="store_true", help="list the passes and their options, then exit")
    p.set_defaults(func=cmd_opt)

    p = sub.add_parser("run", help="execute a model with the reference interpreter",
                       description="Run FILE's @main graph on the arrays of IN.npz (keys are the graph's input "
                                   "names) and write its outputs, by name, to OUT.npz.")
    p.add_argument("file", help="a .rdu IR text file or an ONNX model")
    p.add_argument("--inputs", metavar="IN.npz", help="the input arrays, one per graph input, by name")
    p.add_argument("--output", metavar="OUT.npz", required=True, help="where to write the outputs")
    p.add_argument("--arch", help="compile for this architecture and run the placed program (every socket)")
    p.add_argument("--sockets", type=int, default=1, help="with --arch: sockets to shard over (default 1)")
    _pipeline_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="build a small GPT-style model and print its IR",
                       description="Build a small GPT-style decoder with random weights, run PIPELINE over it, "
                                   "and print the IR (or save it, weights included, with -o).")
    p.add_argument("--layers", type=int, default=1, help="decoder blocks (default 1)")
    p.add_argument("--d-model", type=int, default=32, help="hidden size (default 32)")
    p.add_argument("--heads", type=int, default=2, help="attention heads (default 2)")
    p.add_argument("--vocab", type=int, default=64, help="vocabulary size (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the IR here, weights to OUT's .npz")
    _arch_arg(p)
    _pipeline_args(p)
    p.set_defaults(func=cmd_demo)


def _arch_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", help="target of the back-end passes (section, place, ...): a preset or a TOML/YAML file "
                                  f"(default {DEFAULT_TARGET})")


DEFAULT_TARGET = "sn40l"  # what a pipeline's target passes compile for without --arch


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--passes", metavar="PIPELINE", default="",
                   help="passes to run, e.g. 'canonicalize,cse,dce' or 'canonicalize{fold-limit=64}'")
    add_print_ir_args(p)
    p.add_argument("--time-passes", action="store_true", help="print a table of the time each pass took (stderr)")
    p.add_argument("--no-verify", action="store_true", help="do not run the verifier after every pass")


def add_print_ir_args(p: argparse.ArgumentParser) -> None:
    """The --print-ir-* flags; :func:`ir_printer` turns them into the instrument that prints."""
    p.add_argument("--print-ir-before-all", action="store_true", help="print the IR before every pass (stderr)")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    p.add_argument("--print-ir-after", metavar="PASSES", default="",
                   help="print the IR after the named passes, e.g. 'cse,dce' (stderr)")
    p.add_argument("--print-ir-after-change", action="store_true",
                   help="print the IR after a pass only if it changed (alone: after every pass that changed it)")


def ir_printer(args: argparse.Namespace) -> IRPrinter | None:
    """The IR printer the --print-ir-* flags ask for; None without them."""
    if not (args.print_ir_before_all or args.print_ir_after_all or args.print_ir_after or args.print_ir_after_change):
        return None
    after_names = {n.strip() for n in args.print_ir_after.split(",") if n.strip()}
    unknown = sorted(after_names - set(PASSES))
    if unknown:
        raise CommandError(f"--print-ir-after: unknown pass '{unknown[0]}' (available: {', '.join(sorted(PASSES))})")
    after = ALL if args.print_ir_after_all or (args.print_ir_after_change and not after_names) else after_names
    return IRPrinter(before=ALL if args.print_ir_before_all else (), after=after,
                     only_changed=args.print_ir_after_change, stream=sys.stderr)


def run_pipeline(module: Module, args: argparse.Namespace) -> None:
    """Run ``args.passes`` over ``module`` (verifying it first, and after each pass, unless --no-verify)."""
    passes = parse_pipeline(args.passes)
    printer = ir_printer(args)
    context = PassContext()
    if any(p.needs_target for p in passes):  # resolved only then: `run --arch` alone is checked by the compile
        from rduflow.compiler.backend.archref import rdu_arch

        context = PassContext(target=rdu_arch(args.arch or DEFAULT_TARGET))
    records = PassManager(passes, context=context, verify_each=not args.no_verify,
                          instruments=[printer] if printer else []).run(module)
    if args.time_passes:
        sys.stderr.write(format_timings(records))


def cmd_opt(args: argparse.Namespace) -> int:
    if args.list_passes:
        for name, cls in available_passes().items():
            print(f"{name}: {cls.summary()}")
            for o in cls.options():
                print(f"    {o.describe()}")
        return 0
    if not args.file:
        raise CommandError("opt: give a FILE (.rdu IR text or ONNX model), or --list-passes")
    if args.output:
        check_writable(args.output, "-o")
    module = load_module(args.file, shapes_only=args.shapes_only)
    run_pipeline(module, args)
    _emit(module, args.output)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rduflow.compiler.demo import DemoConfig, build_demo

    if args.output:
        check_writable(args.output, "-o")
    cfg = DemoConfig(vocab=args.vocab, d_model=args.d_model, heads=args.heads, layers=args.layers, seed=args.seed)
    module = build_demo(cfg)
    run_pipeline(module, args)
    _emit(module, args.output)
    return 0


def _emit(module: Module, output: str | None) -> None:
    if output:
        written = save_module(module, output)
        print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    else:
        sys.stdout.write(print_module(module))


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".npz":
        raise CommandError(f"--output {out}: outputs are written as .npz; name it OUT.npz")
    check_writable(out, "--output")
    module = load_module(args.file)
    run_pipeline(module, args)
    graph = module.main
    inputs = _read_inputs(args.inputs, module)
    if args.arch:
        from rduflow.compiler.backend import run_compiled

        outputs = run_compiled(module, inputs, args.arch, sockets=args.sockets)
    else:
        outputs = run(module, inputs)
    save_arrays(out, outputs)
    for name, x in outputs.items():
        print(f"{name}: {x.dtype}{list(x.shape)}")
    print(f"wrote {out} ({len(outputs)} output{'s' if len(outputs) != 1 else ''} of @{graph.name})", file=sys.stderr)
    return 0


def _read_inputs(path: str | None, module: Module) -> dict[str, np.ndarray]:
    args = module.main.args
    wanted = ", ".join(f"{a.name}: {a.type}" for a in args)
    if path is None:
        if args:
            raise CommandError(f"the graph takes inputs ({wanted}): give them with --inputs IN.npz")
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise LoadError(f"{path}: not a readable .npz file ({e})") from None
    names = [a.name for a in args]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise CommandError(f"{path}: no array for input(s) {', '.join(missing)} (the graph takes {wanted}; "
                           f"the file has {', '.join(sorted(arrays)) or 'no arrays'})")
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise CommandError(f"{path}: array(s) {', '.join(extra)} match no graph input (the graph takes {wanted})")
    for a in args:
        x = arrays[a.name]
        want = a.type.dtype.numpy
        if x.dtype != want and x.dtype.kind == "V" and x.dtype.itemsize == want.itemsize:
            x = arrays[a.name] = x.view(want)  # bf16 and friends are stored as raw bytes
        if x.dtype != want:
            raise CommandError(f"{path}: input '{a.name}' is {x.dtype}, the graph wants {a.type.dtype} "
                               f"(numpy {want}): convert it with .astype(np.{want})")
        fixed = [d.maybe_int() for d in a.type.shape]
        if x.ndim != a.type.rank or any(f is not None and f != n for f, n in zip(fixed, x.shape)):
            raise CommandError(f"{path}: input '{a.name}' has shape {list(x.shape)}, the graph wants {a.type}")
    return arrays
