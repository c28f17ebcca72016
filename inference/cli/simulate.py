"""``rduflow simulate`` and ``rduflow compare``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rduflow.compiler.loading import check_writable
from rduflow.compiler.target import GpuArch, load_arch
from rduflow.inference.cli.ir import add_print_ir_args, ir_printer
from rduflow.inference.cli.model_arg import MODEL_HELP, add_dim_arg, model_argument
from rduflow.inference.config import (
    DEFAULT_ARCH,
    DEFAULT_MODEL,
    KV_DTYPES,
    WEIGHT_DTYPES,
    RunConfig,
    SpecDecode,
)
from rduflow.inference.errors import LlmSimError
from rduflow.inference.model_source import ModelSource


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate LLM inference (TTFT, ITL, throughput, bandwidth) on an RDU or a GPU",
        description="Simulate prefill and decode of a model on an architecture. With no arguments: "
                    f"{DEFAULT_MODEL} on one {DEFAULT_ARCH} node (8 sockets).")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, metavar="MODEL",
                   help=f"{MODEL_HELP} (default {DEFAULT_MODEL})")
    p.add_argument("--arch", default=DEFAULT_ARCH, help=f"architecture preset or file (default {DEFAULT_ARCH}; "
                   "rduflow arch list)")
    devices = p.add_mutually_exclusive_group()
    devices.add_argument("--sockets", type=int, help="RDU sockets (default: one node)")
    devices.add_argument("--gpus", type=int, help="GPUs, tensor parallel over NVLink, or PCIe on a card without it (default 1)")
    _workload_args(p)
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/report-schema.md) instead")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report with figures")
    p.add_argument("--trace", metavar="FILE.json", help="write a Chrome trace of the prefill and one decode step")
    add_print_ir_args(p)  # the passes that make the graphs: decode's, then prefill's (inference/graphs.py)
    p.set_defaults(func=_simulate)

    c = subparsers.add_parser(
        "compare", help="run one workload on several targets and compare them side by side",
        description="Simulate the same model and workload on each --target and print a table "
                    "(TTFT, ITL, tokens/s per user, aggregate tokens/s, bandwidth use); also writes it "
                    "as Markdown and a plot.")
    c.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    c.add_argument("--target", action="append", required=True, metavar="ARCH[:N]",
                   help="an architecture and its socket or GPU count, e.g. sn40l:16 or h100-sxm:8 (repeat)")
    _workload_args(c)
    c.add_argument("-o", "--output", default="compare.md", metavar="FILE.md",
                   help="where to write the table (default compare.md)")
    c.add_argument("--plot", metavar="FILE.png", help="where to write the plot (default: beside the table, .png)")
    c.add_argument("--json", action="store_true", help="print the reports as JSON instead of the table")
    c.set_defaults(func=_compare)


def _workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    p.add_argument("--prompt", type=int, default=1024, help="prompt tokens (default 1024)")
    p.add_argument("--gen", type=int, default=128, help="generated tokens (default 128)")
    p.add_argument("--weights", choices=WEIGHT_DTYPES, default="bf16", help="weight storage (default bf16)")
    p.add_argument("--kv-dtype", choices=KV_DTYPES, default="bf16", help="KV-cache storage (default bf16)")
    p.add_argument("--spec-decode", metavar="DRAFT,k=K,accept=A", type=_spec,
                   help="speculative decoding: a draft model from the library proposes K tokens, "
                        "each accepted with probability A")
    p.add_argument("--prefix-cache", type=int, default=0, metavar="T",
                   help="prompt tokens already in the KV cache (they skip prefill)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="GPU: launch kernels one by one from the host")
    p.add_argument("--no-kernel-looping", action="store_true", help="RDU: launch every layer's kernel separately")
    p.add_argument("--no-host-overheads", action="store_true",
                   help="leave out the serving engine's CPU time per request and per step (docs/serving.md)")
    p.add_argument("--no-host-power", action="store_true",
                   help="leave the host and system around the devices out of the energy (docs/energy.md)")
    p.add_argument("--usd-per-device-hour", type=float, metavar="USD",
                   help="price of one device for an hour, for the cost per token (default: the target's, if it has one)")
    p.add_argument("--allow-long-context", action="store_true",
                   help="simulate a prompt + gen longer than the model's maximum context (max_position_embeddings)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_dim_arg(p)


def _spec(text: str) -> SpecDecode:
    try:
        return SpecDecode.parse(text)
    except LlmSimError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _config(args: argparse.Namespace, model: ModelSource, arch: str, devices: int | None) -> RunConfig:
    return RunConfig(
        model=model, arch=arch, devices=devices, batch=args.batch, prompt=args.prompt, gen=args.gen,
        weights=args.weights, kv_dtype=args.kv_dtype, spec=args.spec_decode, prefix_cache=args.prefix_cache,
        cuda_graphs=not args.no_cuda_graphs, kernel_looping=not args.no_kernel_looping,
        allow_long_context=args.allow_long_context, host_overheads=not args.no_host_overheads,
        host_power=not args.no_host_power, usd_per_device_hour=args.usd_per_device_hour).checked()


def _simulate(args: argparse.Namespace) -> int:
    from rduflow.inference.result import summary, to_json
    from rduflow.inference.run import simulate_llm

    arch = load_arch(args.arch)
    is_gpu = isinstance(arch, GpuArch)
    if is_gpu and args.sockets is not None:
        raise LlmSimError(f"{arch.name} is a GPU: give its count with --gpus, not --sockets")
    if not is_gpu and args.gpus is not None:
        raise LlmSimError(f"{arch.name} is an RDU: give its socket count with --sockets, not --gpus")
    for flag, path in (("--report", args.report), ("--trace", args.trace)):
        if path:
            check_writable(path, flag)
    cfg = _config(args, model_argument(args), args.arch, args.gpus if is_gpu else args.sockets)
    printer = ir_printer(args)
    run = simulate_llm(cfg, progress=not (args.json or args.quiet), instruments=[printer] if printer else [])
    print(to_json(run) if args.json else summary(run))
    if args.report:
        from rduflow.inference.report import write_html

        write_html(run, args.report)
        if not args.json:
            print(f"\nreport: {args.report}")
    if args.trace:
        from rduflow.inference.trace import write_trace

        write_trace(run, args.trace)
        if not args.json:
            print(f"trace: {args.trace} (open in ui.perfetto.dev)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from rduflow.inference.compare import compare, parse_target, plot_format, write_outputs

    targets = [parse_target(t) for t in args.target]
    model = model_argument(args)
    out = Path(args.output)
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    check_writable(out, "-o")
    check_writable(plot, "--plot")
    plot_format(plot)
    runs = compare(targets, lambda arch, n: _config(args, model, arch, n), progress=not (args.json or args.quiet))
    table = write_outputs(runs, out, plot)
    if args.json:
        from rduflow.inference.result import report_dict

        print(json.dumps([report_dict(r) for r in runs], indent=1))
    else:
        print(table)
        print(f"\ntable: {out}\nplot: {plot}")
    return 0

