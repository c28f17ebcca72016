"""What ``rduflow models show`` reports, all read off built graphs, none written per family.

* parameters: elements of the graph's initializers (quantization scales excluded);
* active parameters: those one token's forward pass uses (``active_parameter_count``: the
  routed expert tables count top_k / num_experts of their elements; dense models: all);
* weight bytes per dtype: initializer bytes of the graph built at that dtype, scales included;
* FLOPs: the IR cost model (``graph_cost``) over the imported prefill and decode graphs,
  symbolic in batch/seq/past, evaluated at batch 1 and the requested seq / past;
* KV bytes per token: the cache inputs of the decode graph, per unit of ``past``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import Dim, graph_cost
from rduflow.models import build_onnx
from rduflow.models.config import ModelConfig
from rduflow.models.stats import STATS_DTYPE, active_parameter_count, parameter_count, weight_bytes
from rduflow.models.weights import WEIGHT_DTYPES


@dataclass(frozen=True)
class ModelStats:
    name: str
    family: str
    parameters: int
    active_parameters: int  # per token: top-k of the routed experts, all of a dense model
    weight_bytes: dict[str, int]
    seq: int
    past: int
    prefill_flops: str  # symbolic, over batch and seq
    decode_flops: str  # symbolic, over batch and past
    prefill_flops_per_token: float  # at batch 1, ``seq`` tokens
    decode_flops_per_token: float  # at batch 1, ``past`` cached tokens
    decode_bytes_per_token: float  # bytes the decode step reads and writes, same point
    kv_bytes_per_token: int  # per sequence, all layers, keys and values, in STATS_DTYPE

    def to_dict(self) -> dict:
        return dict(self.__dict__)



def model_stats(cfg: ModelConfig, seq: int = 2048, past: int = 2048) -> ModelStats:
    prefill = build_onnx(cfg, "prefill", weights="shape-only", dtype=STATS_DTYPE)
    decode = build_onnx(cfg, "decode", weights="shape-only", dtype=STATS_DTYPE)
    by_dtype = {dt: weight_bytes(build_onnx(cfg, "prefill", weights="shape-only", dtype=dt)) for dt in WEIGHT_DTYPES}
    pre_main = import_onnx(prefill, shapes_only=True).main
    dec_main = import_onnx(decode, shapes_only=True).main
    pre_cost = graph_cost(pre_main)
    dec_cost = graph_cost(dec_main)
    at_prefill = {"batch": 1, "seq": seq}
    at_decode = {"batch": 1, "past": past}
    kv = Dim.const(0)
    for arg in dec_main.args:
        if arg.name and arg.name.startswith("past_key_values."):
            kv = kv + arg.type.nbytes
    return ModelStats(
        name=cfg.name, family=cfg.family, parameters=parameter_count(prefill),
        active_parameters=active_parameter_count(prefill), weight_bytes=by_dtype,
        seq=seq, past=past, prefill_flops=str(pre_cost.flops), decode_flops=str(dec_cost.flops),
        prefill_flops_per_token=float(pre_cost.flops.evaluate(at_prefill)) / seq,
        decode_flops_per_token=float(dec_cost.flops.evaluate(at_decode)),
        decode_bytes_per_token=float((dec_cost.bytes_read + dec_cost.bytes_written).evaluate(at_decode)),
        kv_bytes_per_token=int(kv.evaluate({"batch": 1, "past": 1})),
    )
