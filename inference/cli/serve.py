"""``rduflow serve``: a request stream through a serving engine on one or more targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from rduflow.compiler.loading import check_writable
from rduflow.inference.cli.model_arg import MODEL_HELP, add_dim_arg, model_argument
from rduflow.inference.config import DEFAULT_MODEL, KV_DTYPES, WEIGHT_DTYPES
from rduflow.inference.errors import LlmSimError

DEFAULT_TARGET = "sn40l"
DEFAULT_REQUESTS = 100
DEFAULT_SEARCH_REQUESTS = 500  # --max-rate wants a steady state: a longer stream


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a stream of requests (continuous batching, paged KV cache, latency percentiles)",
        description="Simulate serving under load: requests arrive, a scheduler batches them step by step, the "
                    "KV cache is paged. Prints TTFT, ITL, TPOT, E2E and queueing percentiles, throughput and "
                    "goodput per --target (default: one sn40l node).")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, metavar="MODEL",
                   help=f"{MODEL_HELP} (default {DEFAULT_MODEL})")
    p.add_argument("--target", action="append", metavar="ARCH[:N]",
                   help="an architecture and its socket or GPU count, e.g. sn40l:16 or h100-sxm:8 (repeat to compare)")
    w = p.add_argument_group("workload (docs/serving-workloads.md)")
    w.add_argument("--workload", metavar="FILE", help="a workload spec (.yaml/.toml, inference-perf configs too) or "
                   "a trace (.csv/.jsonl with arrival_s,input_tokens,output_tokens[,prefix_id,prefix_tokens])")
    w.add_argument("--rate", metavar="R[,R...]", help="requests per second (several: one run per rate; default 1)")
    w.add_argument("--requests", type=int, metavar="N",
                   help=f"requests to send (default {DEFAULT_REQUESTS}; {DEFAULT_SEARCH_REQUESTS} with --max-rate)")
    w.add_argument("--input-len", metavar="DIST", default=None, help="prompt tokens: N, uniform:LO,HI, normal:MEAN,STD, "
                   "lognormal:MEAN,STD or file:PATH (default 1024)")
    w.add_argument("--output-len", metavar="DIST", default=None, help="generated tokens, same forms (default 128)")
    w.add_argument("--arrival", default="poisson", metavar="KIND",
                   help="poisson, gamma:CV, constant or jittered (default poisson)")
    w.add_argument("--stages", metavar="R:T[,R:T...]", help="rate R for T seconds, then the next (instead of --rate)")
    w.add_argument("--concurrency", type=int, metavar="N",
                   help="at most N requests in flight (alone: a closed loop; with --rate: vLLM's --max-concurrency)")
    w.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    w.add_argument("--mix", metavar="MODEL=SHARE[,...]",
                   help="other models on the same devices (a composition of experts): each request goes to "
                        "MODEL with probability SHARE, to the main MODEL otherwise; a batch runs one model "
                        "and changing model brings its weights in (needs --scheduler static or buckets)")
    e = p.add_argument_group("engine (vLLM's names and defaults)")
    e.add_argument("--scheduler", choices=("vllm", "static", "buckets"), default="vllm",
                   help="vllm: continuous batching (vLLM V1); static: whole batches; buckets: static batches padded "
                        "to compiled (batch, length) shapes, as SambaNova serves (default vllm)")
    e.add_argument("--max-num-batched-tokens", type=int, help="token budget per step (default: 8192 on devices "
                   "with >= 70 GiB, else 2048)")
    e.add_argument("--max-num-seqs", type=int, help="sequences per step (default: 1024 on devices with >= 70 GiB, "
                   "else 256)")
    e.add_argument("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    e.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="share of each device's memory the engine may use (default 0.9)")
    e.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=True,
                   help="split long prompts over steps, mixed with decodes (default on)")
    e.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse cached KV blocks of shared prompt prefixes (default on)")
    e.add_argument("--max-model-len", type=int, help="longest request, tokens in and out (default: the model's)")
    e.add_argument("--kv-cache-tokens", type=int, metavar="N", help="KV capacity in tokens instead of what memory "
                   "leaves (vLLM's --num-gpu-blocks-override x block size)")
    e.add_argument("--kv-offloading-size", type=float, metavar="GIB",
                   help="GiB per device for KV blocks evicted from device memory, found again by prefix lookups "
                        "(GPU: host memory over PCIe, default off; RDU: its DDR, default the DDR's capacity)")
    e.add_argument("--batch-buckets", metavar="B,B,...",
                   help="buckets scheduler: compiled batch sizes (default 1,2,4,8,16,32,64)")
    e.add_argument("--seq-buckets", metavar="S,S,...",
                   help="buckets scheduler: compiled sequence lengths (default 1024 ... 32768)")
    e.add_argument("--no-host-overheads", action="store_true",
                   help="leave out the engine's CPU time per step and per request (docs/serving.md)")
    p.add_argument("--weights", choices=WEIGHT_DTYPES, default="bf16", help="weight storage (default bf16)")
    p.add_argument("--kv-dtype", choices=KV_DTYPES, default="bf16", help="KV-cache storage (default bf16)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="GPU: launch kernels one by one from the host")
    p.add_argument("--slo", metavar="ttft=500ms,itl=50ms", help="latency targets for goodput (and --max-rate)")
    p.add_argument("--max-rate", action="store_true",
                   help="search the highest arrival rate at which 90%% of requests meet --slo")
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/report-schema.md)")
    p.add_argument("--report", metavar="FILE.html", help="write an HTML report (latency CDFs, load over time)")
    p.add_argument("--trace", metavar="FILE.json", help="write a Perfetto trace: a track per request and per step")
    p.add_argument("--per-request", metavar="FILE.jsonl", help="write one JSON line per request: its send time, "
                   "queueing, TTFT, E2E, every inter-token gap (ms), or why it was rejected")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write step tables on disk")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_dim_arg(p)
    p.set_defaults(func=_serve)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise LlmSimError(f"{flag} takes comma-separated integers, got {text!r}") from None


def _rates(text: str | None) -> list[float | None]:
    if text is None:
        return [None]
    try:
        rates = [float(x) for x in text.split(",")]
    except ValueError:
        raise LlmSimError(f"--rate takes requests per second (R or R,R,...), got {text!r}") from None
    for r in rates:
        if not r > 0:
            raise LlmSimError(f"--rate must be positive requests per second, got {r:g}")
    return rates


def workload_maker(args: argparse.Namespace):
    """A function rate -> Workload (rate None: as the options say)."""
    from rduflow.inference.serving.workload import (
        load_workload,
        parse_arrival,
        parse_length,
        parse_stages,
        synthesize,
    )

    if args.workload:
        for flag in ("rate", "requests", "input_len", "output_len", "stages", "concurrency"):
            if getattr(args, flag) is not None:
                raise LlmSimError(f"--workload {args.workload} says what to send; leave out --{flag.replace('_', '-')}")
        wl = load_workload(args.workload, seed=args.seed)
        return lambda rate: wl

    if args.stages and args.rate is not None:
        raise LlmSimError("--stages sets the rates over time: leave out --rate")
    arrival = parse_arrival(args.arrival)
    inp = parse_length(args.input_len or "1024", "--input-len")
    out = parse_length(args.output_len or "128", "--output-len")
    stages = parse_stages(args.stages) if args.stages else None
    closed = args.concurrency is not None and args.rate is None and stages is None
    count = args.requests
    if count is None and not stages:
        count = DEFAULT_SEARCH_REQUESTS if args.max_rate else DEFAULT_REQUESTS

    def make(rate: float | None):
        r = None if (closed or stages) else (rate if rate is not None else 1.0)
        return synthesize(arrival=arrival, input_len=inp, output_len=out, requests=count,
                          rate=r, stages=stages, concurrency=args.concurrency, shared_prefix=None, seed=args.seed)

    return make


def _serve(args: argparse.Namespace) -> int:
    from rduflow.inference.compare import parse_target
    from rduflow.inference.serving.config import EngineConfig
    from rduflow.inference.serving.metrics import Slo
    from rduflow.inference.serving.report import comparison, report_dict, summary, to_json
    from rduflow.inference.serving.serve import ServeConfig, serve

    targets = [parse_target(t) for t in (args.target or [DEFAULT_TARGET])]
    outputs = [(flag, path) for flag, path in (("--report", args.report), ("--trace", args.trace),
                                               ("--per-request", args.per_request)) if path]
    for flag, path in outputs:
        check_writable(path, flag)
    for i, (flag, path) in enumerate(outputs):
        for other, path2 in outputs[i + 1:]:
            if Path(path).resolve() == Path(path2).resolve():
                raise LlmSimError(f"{flag} and {other} name the same file {path}: give each its own")
    if args.requests is not None and args.requests < 1:
        raise LlmSimError(f"--requests must be at least 1, is {args.requests}")
    if args.seed < 0:
        raise LlmSimError(f"--seed must be a non-negative integer, is {args.seed}")
    if args.scheduler != "buckets":
        for flag, value in (("--batch-buckets", args.batch_buckets), ("--seq-buckets", args.seq_buckets)):
            if value is not None:
                raise LlmSimError(f"{flag} shapes the buckets scheduler: add --scheduler buckets, or leave it out")
    slo = Slo.parse(args.slo) if args.slo is not None else None
    if args.max_rate and slo is None:
        raise LlmSimError("--max-rate searches for the highest rate that meets --slo: give --slo too")
    engine = EngineConfig(
        scheduler=args.scheduler, max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
        block_size=args.block_size, gpu_memory_utilization=args.gpu_memory_utilization,
        enable_chunked_prefill=args.enable_chunked_prefill, enable_prefix_caching=args.enable_prefix_caching,
        max_model_len=args.max_model_len, kv_cache_tokens=args.kv_cache_tokens,
        **({"batch_buckets": _ints(args.batch_buckets, "--batch-buckets")} if args.batch_buckets else {}),
        **({"seq_buckets": _ints(args.seq_buckets, "--seq-buckets")} if args.seq_buckets else {}),
        host_overheads=not args.no_host_overheads, kv_offloading_size=args.kv_offloading_size).checked()
    rates = _rates(args.rate)
    make = workload_maker(args)
    if args.max_rate and (args.workload or args.stages or len(rates) > 1 or
                          (args.concurrency is not None and args.rate is None)):
        raise LlmSimError("--max-rate varies --rate: use it with a synthetic open-loop workload (no --workload, "
                          "--stages or closed loop) and at most one --rate, the first guess")
    model = model_argument(args)
    mix = []
    if args.mix is not None:
        from rduflow.inference.serving.workload import assign_models, parse_mix

        mix = parse_mix(args.mix)
        plain = make
        make = lambda rate: assign_models(plain(rate), model.spec, mix, args.seed)  # noqa: E731
    progress = not (args.json or args.quiet)
    reports, results = [], []
    for arch_name, n in targets:
        cfg = ServeConfig(model, arch_name, n, engine, args.weights, args.kv_dtype,
                          cuda_graphs=not args.no_cuda_graphs, use_cache=not args.no_cache,
                          mix=tuple(name for name, _ in mix))
        if args.max_rate:
            from rduflow.inference.serving.search import max_rate

            found = max_rate(cfg, make, slo, first=rates[0], progress=progress)
            results.append(found.best)
            d = report_dict(found.best, slo) if found.best else None
            reports.append({"max_rate": found.to_dict(), "report": d})
            if not args.json:
                print(found.describe())
            continue
        for rate in rates:
            r = serve(cfg, make(rate), progress=progress)
            results.append(r)
            d = report_dict(r, slo)
            reports.append(d)
            if not args.json:
                print(summary(d))
                print()
    if args.json:
        print(to_json(reports))
    elif len(reports) > 1 and not args.max_rate:
        print(comparison(reports))
    if args.report:
        from rduflow.inference.serving.html import write_html

        write_html([r for r in results if r is not None], args.report, slo)
        if not args.json:
            print(f"report: {args.report}")
    if args.per_request:
        from rduflow.inference.serving.report import write_requests

        write_requests([r for r in results if r is not None], args.per_request)
        if not args.json:
            print(f"per request: {args.per_request}")
    if args.trace:
        from rduflow.inference.serving.trace import write_trace

        write_trace([r for r in results if r is not None], args.trace)
        if not args.json:
            print(f"trace: {args.trace} (open in ui.perfetto.dev)")
    return 0
