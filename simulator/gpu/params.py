"""The GPU model's own constants: how well kernels use the hardware the preset describes.

The presets (``compiler/target/presets/*.toml``) hold datasheet figures; these are the modelling
choices on top of them. Every value is documented in docs/gpu-model.md with its source:
exactly one (``stream_efficiency``) is fitted, to the one GPU measurement hardware.md allows
(gpt-fast, Llama-2-7B on an A100-80GB); the others follow from first principles or are
stated assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuParams:
    # Fraction of the HBM datasheet bandwidth a long streaming kernel sustains. Fitted so the
    # model reproduces gpt-fast's 104.9 tokens/s (docs/gpu-model.md, "Calibration").
    stream_efficiency: float = 0.708
    # Fraction of the tensor-core peak the best large GEMM tile loop reaches (assumed: tile
    # prologue/epilogue and clock throttling under sustained tensor load).
    gemm_efficiency: float = 0.80
    # The same for fused attention, whose softmax between the two products runs on the CUDA
    # cores (assumed, below GEMM for that reason).
    attention_efficiency: float = 0.60
    # Tensor-core tile shape: the MMA instruction has 16 rows (mma.sync m16n8k16), so a
    # product with fewer rows leaves rows idle; large products use 128 x 128 CTA tiles.
    min_tile_m: int = 16
    tile_m: int = 128
    tile_n: int = 128
    # A tile loop over K shorter than this gains nothing from splitting K across SMs.
    split_k_min: int = 512
    # Gap between consecutive kernels on the GPU when a CUDA graph launches them (assumed).
    graph_gap_us: float = 1.0
    # Ring all-reduce: per step synchronisation latency (assumed) and the fraction of the
    # NVLink per-direction bandwidth a ring sustains (assumed).
    collective_step_us: float = 1.0
    link_efficiency: float = 0.80


DEFAULT_PARAMS = GpuParams()
