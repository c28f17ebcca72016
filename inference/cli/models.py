"""``rduflow models list | show | export``."""

from __future__ import annotations

import argparse
import json

from rduflow.models.build import VARIANTS, WEIGHT_MODES, build_onnx
from rduflow.inference.model_source import resolve_model
from rduflow.models.config import ModelConfig, ModelError
from rduflow.models.export import save_onnx
from rduflow.models.presets import get_config, list_presets
from rduflow.models.weights import ACT_DTYPES, WEIGHT_DTYPES


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list, inspect and export the built-in LLM graphs")
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)

    ls = sub.add_parser("list", help="the model presets and their shapes")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="parameters (total and active), weight bytes, FLOPs and KV bytes per token of one model")
    show.add_argument("model", help="a preset name (see `rduflow models list`), a Hugging Face config.json or a "
                                    "folder holding one")
    show.add_argument("--seq", type=int, default=2048, help="prompt length for prefill FLOPs per token (default 2048)")
    show.add_argument("--past", type=int, default=2048, help="cached tokens for decode FLOPs per token (default 2048)")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=cmd_show)

    ex = sub.add_parser("export", help="write one variant of a model as ONNX")
    ex.add_argument("model", help="a preset name, a Hugging Face config.json or a folder holding one")
    ex.add_argument("--variant", choices=VARIANTS, default="prefill")
    ex.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    ex.add_argument("--weights", choices=WEIGHT_MODES, help="default: random for tiny-* presets, else shape-only")
    ex.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
    ex.add_argument("--dtype", choices=WEIGHT_DTYPES, default="f32", help="weight precision (default f32)")
    ex.add_argument("--act-dtype", choices=ACT_DTYPES, help="activation precision of int8/int4 models (default bf16)")
    ex.add_argument("--quant-block", type=int, default=128, help="int4 block size along the input dim (default 128)")
    for dim in ("batch", "seq", "past"):
        ex.add_argument(f"--{dim}", help=f"fix the {dim} dimension to an int (or rename its symbol)")
    ex.epilog = ("The decode variant keeps seq symbolic (tokens per step: 1, or k+1 when verifying draft tokens), "
                 "as `rduflow simulate` builds it; --seq 1 fixes it.")
    ex.set_defaults(func=cmd_export)


def model_config(arg: str) -> ModelConfig:
    """A preset name or a Hugging Face config.json (or a folder holding one): the MODEL
    argument of the other commands, less the model files, which have no configuration."""
    source = resolve_model(arg)
    if source.config is None:
        raise ModelError(f"{arg}: an ONNX or IR file; models show and export take a preset name or a "
                         "Hugging Face config.json")
    return source.config


def cmd_list(args: argparse.Namespace) -> int:
    rows = [get_config(n) for n in list_presets()]
    if args.json:
        print(json.dumps([c.to_dict() for c in rows], indent=2))
        return 0
    head = ("name", "family", "layers", "hidden", "heads", "kv", "ffn", "vocab", "notes")
    table = [head] + [(c.name, c.family, str(c.num_layers), str(c.hidden_size), str(c.num_heads),
                       str(c.num_kv_heads), str(c.intermediate_size), str(c.vocab_size), _notes(c)) for c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _notes(c: ModelConfig) -> str:
    notes = []
    if c.is_moe:
        notes.append(f"{c.num_experts} experts, top-{c.num_experts_per_tok}")
    if c.sliding_window:
        notes.append(f"window {c.sliding_window}")
    if c.rope_scaling:
        notes.append(f"rope x{c.rope_scaling.factor:g}")
    if c.qkv_bias and c.family != "gpt2":
        notes.append("qkv bias")
    if c.tie_word_embeddings:
        notes.append("tied head")
    return ", ".join(notes)


def cmd_show(args: argparse.Namespace) -> int:
    from rduflow.compiler.model_stats import STATS_DTYPE, model_stats

    s = model_stats(model_config(args.model), seq=args.seq, past=args.past)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
        return 0
    print(f"{s.name} ({s.family})")
    print(f"  parameters              {s.parameters:,}")
    print(f"  active parameters       {s.active_parameters:,}  (per token)")
    print("  weight bytes            " + ", ".join(f"{dt} {_bytes(b)}" for dt, b in s.weight_bytes.items()))
    print(f"  prefill FLOPs/token     {s.prefill_flops_per_token:.4g}  (batch 1, seq {s.seq})")
    print(f"  decode FLOPs/token      {s.decode_flops_per_token:.4g}  (batch 1, past {s.past})")
    print(f"  decode bytes/token      {s.decode_bytes_per_token:.4g}  (read + written, batch 1, past {s.past})")
    print(f"  KV bytes/token          {s.kv_bytes_per_token:,}  ({STATS_DTYPE}, all layers)")
    print(f"  prefill FLOPs           {s.prefill_flops}")
    print(f"  decode FLOPs            {s.decode_flops}")
    return 0


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _export_seq(args: argparse.Namespace) -> str | None:
    """The decode graph's seq stays a symbol unless fixed, so the export simulates as it is
    (``build_onnx`` alone fixes it to 1, the shape ``compile --variant decode`` wants)."""
    if args.seq is None and args.variant == "decode":
        return "seq"
    return args.seq


def cmd_export(args: argparse.Namespace) -> int:
    from rduflow.compiler.loading import check_writable

    output = check_writable(args.output, "-o")  # through a link, never over a device
    cfg = model_config(args.model)
    model = build_onnx(cfg, args.variant, weights=args.weights, seed=args.seed, dtype=args.dtype,
                       act_dtype=args.act_dtype, quant_block=args.quant_block,
                       batch=args.batch, seq=_export_seq(args), past=args.past)
    out = save_onnx(model, output)
    meta = {p.key: p.value for p in model.metadata_props}
    print(f"wrote {out} ({cfg.name} {args.variant}, {len(model.graph.node)} nodes, {meta['rduflow.weights']} weights)")
    return 0
