"""The serving engine's options, under vLLM's names and with vLLM's defaults.

Defaults follow vLLM's V1 engine as ``vllm serve`` (the OpenAI-compatible server) sets them
(``vllm/engine/arg_utils.py``, ``EngineArgs._set_default_args``): a 16-token KV block,
90% of device memory for the engine, chunked prefill and prefix caching on, and a token
budget and sequence cap that depend on device memory (8192 tokens and 1024 sequences on a
device with at least 70 GiB, 2048 and 256 below that).
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.inference.errors import LlmSimError

SCHEDULERS = ("vllm", "static", "buckets")
LARGE_DEVICE_GIB = 70  # vLLM's threshold between its two sets of defaults


@dataclass(frozen=True)
class EngineConfig:
    scheduler: str = "vllm"  # vllm: continuous batching; static: whole batches; buckets: the RDU's compiled shapes
    max_num_batched_tokens: int | None = None  # None: vLLM's default for the device's memory
    max_num_seqs: int | None = None
    block_size: int = 16
    gpu_memory_utilization: float = 0.9  # also the share of an RDU socket's HBM the engine may use
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    max_model_len: int | None = None  # None: the model's maximum context
    kv_cache_tokens: int | None = None  # override the KV capacity (per replica, in tokens); 0 < n
    batch_buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)  # buckets: compiled batch sizes
    seq_buckets: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768)  # buckets: compiled lengths
    host_overheads: bool = True  # the engine's CPU time per step and per request (serving/host.py)
    # GiB per device for KV blocks evicted from the device cache (vLLM's --kv-offloading-size,
    # to CPU memory over PCIe). None: off on GPUs (vLLM's default), an RDU's DDR on RDUs.
    kv_offloading_size: float | None = None

    def resolved(self, device_gib: float) -> EngineConfig:
        """With the device-dependent defaults filled in, checked."""
        large = device_gib >= LARGE_DEVICE_GIB
        tokens = self.max_num_batched_tokens or (8192 if large else 2048)
        seqs = self.max_num_seqs or (1024 if large else 256)
        cfg = EngineConfig(**{**self.__dict__, "max_num_batched_tokens": tokens, "max_num_seqs": seqs})
        return cfg.checked()

    def checked(self) -> EngineConfig:
        if self.scheduler not in SCHEDULERS:
            raise LlmSimError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, is {self.scheduler!r}")
        for flag, v in (("--max-num-batched-tokens", self.max_num_batched_tokens), ("--max-num-seqs", self.max_num_seqs),
                        ("--block-size", self.block_size), ("--max-model-len", self.max_model_len),
                        ("--kv-cache-tokens", self.kv_cache_tokens)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise LlmSimError(f"{flag} must be an integer >= 1, is {v!r}")
        if self.kv_offloading_size is not None and not self.kv_offloading_size >= 0:
            raise LlmSimError(f"--kv-offloading-size must be >= 0 GiB, is {self.kv_offloading_size}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise LlmSimError(f"--gpu-memory-utilization must be in (0, 1], is {self.gpu_memory_utilization}")
        for flag, buckets in (("--batch-buckets", self.batch_buckets), ("--seq-buckets", self.seq_buckets)):
            if not buckets or any(b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise LlmSimError(f"{flag} must be increasing positive integers, is {','.join(map(str, buckets))}")
        return self
