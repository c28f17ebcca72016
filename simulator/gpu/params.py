"""The GPU model's own constants: how well kernels and collectives use the hardware the preset
describes.

The presets (``compiler/target/presets/*.toml``) hold datasheet figures and the two shares of
HBM bandwidth each GPU's kernels sustain (``stream_efficiency``, ``decode_kv_efficiency``: fitted
or assumed per GPU, docs/gpu-model.md); these are the modelling choices on top of them, each
documented in docs/gpu-model.md with its source and kind: disclosed (NCCL's tuning model, a
maintainer's figure), derived from published measurements by a stated formula, following from
first principles, or stated assumptions. None is fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NcclProtocol:
    """One NCCL protocol on one NVLink node, as NCCL's own cost model has it (``src/graph/tuning.cc``,
    NCCL 2.19: ``baseLat``, ``hwLat[NVLINK][RING]`` and the ring bandwidth refinements)."""

    name: str
    base_us: float  # fixed cost of the collective kernel (launch, setup, final synchronisation)
    hop_us: float  # per ring step: one NVLink hop and the flag that says the chunk arrived
    reduce_bw: float  # fraction of the bus bandwidth an all-reduce sustains (LL: 8-byte lines, half flags)
    gather_bw: float  # the same for an all-gather
    cap_gb_s: float = math.inf  # bus-bandwidth cap of the protocol (LL: ``llMaxBws``, Hopper/Ampere, one node)


NCCL_RING = (
    NcclProtocol("LL", base_us=6.6, hop_us=0.6, reduce_bw=1 / 4, gather_bw=1 / 3, cap_gb_s=87.7),
    NcclProtocol("LL128", base_us=14.0, hop_us=1.9, reduce_bw=0.92, gather_bw=0.92),
    NcclProtocol("Simple", base_us=8.4, hop_us=3.4, reduce_bw=1.0, gather_bw=1.0),
)


@dataclass(frozen=True)
class GpuParams:
    # Fraction of the tensor-core peak the best large GEMM tile loop reaches (assumed: tile
    # prologue/epilogue and clock throttling under sustained tensor load).
    gemm_efficiency: float = 0.80
    # Fused attention reaches attention_efficiency x L / (L + attention_half_keys) of the tensor
    # peak over L keys: derived from FlashAttention-3's forward pass on an H100 (Shah et al. 2024,
    # arXiv 2407.08608, Fig. 5, head dim 128: 467 TFLOPs at 512 keys, 648 at 16K, of 989); short
    # key ranges pay the per-tile softmax and pipeline fill over fewer products.
    attention_efficiency: float = 0.66
    attention_half_keys: float = 207.0
    # Tensor-core tile shape: the MMA instruction has 16 rows (mma.sync m16n8k16), so a
    # product with fewer rows leaves rows idle; large products use 128 x 128 CTA tiles.
    min_tile_m: int = 16
    tile_m: int = 128
    tile_n: int = 128
    # A tile loop over K shorter than this gains nothing from splitting K across SMs.
    split_k_min: int = 512
    # Gap between consecutive kernels on the GPU when a CUDA graph launches them (assumed).
    graph_gap_us: float = 1.0
    # Collectives: NCCL's ring protocols (the cheapest is chosen per message, as NCCL's tuner
    # does), over NVLink at link_efficiency of its per-direction line rate: 370 of 450 GB/s on
    # H100, "with the protocol overhead (~20%)" (NCCL maintainer, NVIDIA/nccl-tests issue #212).
    nccl_protocols: tuple[NcclProtocol, ...] = NCCL_RING
    link_efficiency: float = 0.82


DEFAULT_PARAMS = GpuParams()
