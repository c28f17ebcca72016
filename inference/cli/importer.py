"""``rduflow import MODEL.onnx [-o OUT.rdu] [--shapes-only]``: an ONNX model as IR text."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from rduflow.ir import ExternalFile, Module, OnnxInitializer, Weight, print_module

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.compiler.loading import check_writable, save_module


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="convert an ONNX model to rduflow IR",
        description="Import MODEL.onnx (weights stay in the ONNX file or its external data, referenced, "
                    "not copied) and print the IR, or write it to OUT.rdu. Unsupported operators are "
                    "listed all at once (exit code 2).")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("-o", "--output", metavar="OUT.rdu", help="write the IR here (atomically) instead of printing it")
    p.add_argument("--shapes-only", action="store_true",
                   help="import without weights: external data files need not exist")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(args.output, "-o")
    module = import_onnx(args.model, shapes_only=args.shapes_only)
    if args.output:
        save_module(module, args.output)  # temp file + rename; weight paths rebased to OUT's folder
    else:
        sys.stdout.write(print_module(_rebased(module, Path.cwd())))
    return 0


def _rebased(module: Module, new_base: Path) -> Module:
    """The module with weight file paths relative to ``new_base`` (printed text read from there)."""
    old_base = module.base_dir or Path.cwd()
    weights = []
    for w in module.weights.values():
        src = w.source
        if isinstance(src, (ExternalFile, OnnxInitializer)) and not Path(src.path).is_absolute():
            rel = os.path.relpath(Path(old_base) / src.path, new_base)
            src = dataclasses.replace(src, path=Path(rel).as_posix())
        weights.append(Weight(w.name, w.type, src))
    view = Module(module.graphs.values(), weights, base_dir=new_base)
    view.attrs = module.attrs
    return view
