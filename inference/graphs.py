"""The graphs a run simulates: a model's prefill and decode graphs, imported into the IR, in
the weight and KV-cache precision asked for.

A model-library preset is built with ``rduflow.models.build_onnx`` (int8 and int4 weights
as the library quantizes them) and imported, and so is a Hugging Face config.json; an ONNX
file or IR text is loaded as it is, its dimensions renamed to their roles (``dim_roles.py``),
and serves both phases when it has a ``past`` dimension (a decode-style graph: prefill is its
``past = 0`` case). Each graph then goes through the pass manager (``run_passes``): the
clean-up passes ``canonicalize,cse,dce``, then two passes of ``compiler/passes/precision.py``
that change the stored precision in the IR itself, so the bytes every backend moves change
with it:

* ``quantize-weights{dtype=fp8|int8|int4}`` (``--weights fp8`` for presets, any narrow
  ``--weights`` for ONNX files): each float weight a matmul reads is stored in the narrow
  type and converted back right before the matmul (a ``cast`` for fp8, a blockwise
  ``dequantize_linear`` for integers), as weight-only quantized kernels do;
* ``kv-cache{dtype=fp8|int8}`` (``--kv-dtype``): the cache inputs and the keys and values
  appended to them are stored narrow, and widened where attention reads them; a preset's
  prefill graph, which only writes the cache, names its cache outputs
  (``kv-cache{dtype=int8,outputs=[present.0.key,...]}``, the decode graph's cache outputs).

A preset's graph runs all of them as one pipeline; an ONNX file's dimensions are checked
between the clean-up and the precision passes (two pipelines), so a graph the simulator cannot
bind is reported as such rather than as a precision pass failing on it.
``rduflow simulate --print-ir-after-all`` prints the IR after each pass, the decode graph's
first (stderr).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rduflow.compiler.passes import ModulePass, PassFailure, PassInstrument, PassManager, parse_pipeline
from rduflow.compiler.passes.precision import KvCache, KvCacheError, QuantizeWeights, appended_cache_outputs
from rduflow.ir import Module
from rduflow.models import ModelConfig

from .dim_roles import ROLES, assign_roles, check_run_sets
from .errors import LlmSimError
from .model_source import ModelSource, resolve_model

PIPELINE = "canonicalize,cse,dce"


@dataclass
class ModelGraphs:
    name: str
    prefill: Module  # symbols batch, seq (and past = 0 for a decode-style graph)
    decode: Module  # symbols batch, seq, past
    prefill_has_past: bool  # the prefill graph is the decode graph (bind past = 0)
    source: str  # "preset", or the path of the config.json, ONNX file or IR text
    _symbols: dict[int, frozenset] = field(default_factory=dict, repr=False, compare=False)  # graph id -> symbols

    def bindings(self, phase_graph: Module, batch: int, seq: int, past: int) -> dict[str, int]:
        env = {"batch": batch, "seq": seq, "past": past}
        symbols = self._symbols.get(id(phase_graph))
        if symbols is None:  # a walk over the whole graph: once per graph (they never change)
            symbols = self._symbols[id(phase_graph)] = phase_graph.symbols
        return {k: v for k, v in env.items() if k in symbols}


def load_graphs(model, weights: str, kv_dtype: str, instruments: Sequence[PassInstrument] = ()) -> ModelGraphs:
    """``model``: a MODEL argument (a preset name, a Hugging Face config.json or a folder
    holding one, an ONNX file or IR text: ``model_source.resolve_model``), a resolved
    ``ModelSource`` (with its ``--dim`` overrides), or a ``rduflow.models.ModelConfig``.

    Library models are built once per process and precision (``rduflow compare`` runs one
    model on several targets); the graphs are never changed by the backends, which compile
    or cost copies. ``instruments`` (e.g. an ``IRPrinter``) watch the passes; with them a
    preset is built afresh, so its passes run and are seen.
    """
    if isinstance(model, ModelConfig):
        source = ModelSource(model.name, model)
    else:
        source = model if isinstance(model, ModelSource) else resolve_model(model)
    if source.is_file_model:
        return _from_file(source, weights, kv_dtype, instruments)
    if source.dims:
        raise LlmSimError(f"--dim: {source.spec} is built by rduflow with the dimensions batch, seq and past; "
                          "--dim applies to ONNX and IR files")
    graphs = (_from_preset(source.config, weights, kv_dtype, instruments) if instruments
              else _cached_preset(source.config, weights, kv_dtype))
    return graphs if source.is_preset else replace(graphs, source=str(source.path))


def precision_passes(weights: str | None, kv_dtype: str, cache_outputs: Sequence[str] = ()) -> list[ModulePass]:
    """The precision passes: ``weights`` quantized (None or bf16: as they are), the KV cache in
    ``kv_dtype``, ``cache_outputs`` naming the cache a graph only writes (prefill)."""
    passes: list[ModulePass] = []
    if weights not in (None, "bf16"):
        passes.append(QuantizeWeights(weights))
    if kv_dtype != "bf16":
        passes.append(KvCache(kv_dtype, tuple(cache_outputs)))
    return passes


def run_passes(module: Module, passes: Sequence[ModulePass], instruments: Sequence[PassInstrument] = ()) -> None:
    """Run ``passes`` through the pass manager (verifying after each)."""
    if not passes:
        return  # nothing to verify either: the graph was verified after its last pass
    try:
        PassManager(passes, instruments=instruments).run(module)
    except PassFailure as e:
        if isinstance(e.__cause__, KvCacheError):  # the graph, not rduflow: name the option that asked
            raise LlmSimError(f"--kv-dtype: {e.__cause__}") from e
        raise


@functools.lru_cache(maxsize=6)
def _cached_preset(cfg: ModelConfig, weights: str, kv_dtype: str) -> ModelGraphs:
    return _from_preset(cfg, weights, kv_dtype, ())


def _from_preset(cfg: ModelConfig, weights: str, kv_dtype: str, instruments: Sequence[PassInstrument]) -> ModelGraphs:
    from rduflow.models import build_onnx

    lib_dtype = weights if weights in ("int8", "int4") else "bf16"
    quantize = "fp8" if weights == "fp8" else None  # the library stores int8/int4 weights itself
    # Decode first: the prefill graph stores narrow the cache outputs the decode graph appends to.
    decode = _import(build_onnx(cfg, "decode", weights="shape-only", dtype=lib_dtype, seq="seq"))
    run_passes(decode, parse_pipeline(PIPELINE) + precision_passes(quantize, kv_dtype), instruments)
    cache = appended_cache_outputs(decode) if kv_dtype != "bf16" else ()
    prefill = _import(build_onnx(cfg, "prefill", weights="shape-only", dtype=lib_dtype))
    run_passes(prefill, parse_pipeline(PIPELINE) + precision_passes(quantize, kv_dtype, cache), instruments)
    return ModelGraphs(cfg.name, prefill, decode, False, "preset")


def _from_file(source: ModelSource, weights: str, kv_dtype: str,
               instruments: Sequence[PassInstrument]) -> ModelGraphs:
    from rduflow.compiler.loading import load_module

    path = source.path
    module = load_module(path, shapes_only=True)
    run_passes(module, parse_pipeline(PIPELINE), instruments)
    check_run_sets(module, dict(source.dims), str(path))
    module = assign_roles(module, dict(source.dims), str(path))
    symbols = module.symbols
    extra = sorted(symbols - set(ROLES))
    if extra:
        raise LlmSimError(f"{path}: no role found for the graph's dimension(s) {', '.join(extra)}: the simulator "
                          f"binds batch, seq and past (name each with --dim NAME=ROLE, or fix it with --dim NAME=N)")
    if "seq" not in symbols:
        raise LlmSimError(f"{path}: the graph has no 'seq' dimension (tokens per step); export it with a symbolic "
                          "sequence length, or name the dimension with --dim NAME=seq")
    if "past" not in symbols:
        raise LlmSimError(f"{path}: the graph has no 'past' dimension (a KV cache input), so decode steps cannot "
                          "be simulated; export the decode variant (rduflow models export NAME --variant decode)")
    run_passes(module, precision_passes(weights, kv_dtype), instruments)
    name = str(module.attrs.get("name") or path.stem)
    return ModelGraphs(name, module, module, True, str(path))


def _import(proto) -> Module:
    from rduflow.compiler.frontend.onnx import import_onnx

    return import_onnx(proto, shapes_only=True)
