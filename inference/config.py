"""What to simulate: the model, the hardware and the serving features, checked up front."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import LlmSimError

WEIGHT_DTYPES = ("bf16", "fp8", "int8", "int4")
KV_DTYPES = ("bf16", "fp8", "int8")
DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_ARCH = "sn40l"


@dataclass(frozen=True)
class SpecDecode:
    """Speculative decoding: ``draft`` proposes ``k`` tokens one at a time, the target checks
    all of them (and produces one more) in one step; each proposal is accepted with
    probability ``accept``, independently, until the first rejection."""

    draft: Any  # a preset name, an ONNX file or a ModelConfig
    k: int
    accept: float

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens per target step: 1 + A + ... + A^K = (1 - A^(K+1)) / (1 - A)."""
        a, k = self.accept, self.k
        if a == 1.0:
            return float(k + 1)
        return (1.0 - a ** (k + 1)) / (1.0 - a)

    @staticmethod
    def parse(text: str) -> SpecDecode:
        """``DRAFT,k=K,accept=A`` (e.g. ``llama-3.2-1b,k=4,accept=0.8``)."""
        parts = [p.strip() for p in text.split(",")]
        usage = "--spec-decode takes DRAFT,k=K,accept=A (e.g. llama-3.2-1b,k=4,accept=0.8)"
        if len(parts) != 3 or not parts[0]:
            raise LlmSimError(f"{usage}, got {text!r}")
        opts: dict[str, str] = {}
        for p in parts[1:]:
            m = re.fullmatch(r"(k|accept)=(.+)", p)
            if not m or m.group(1) in opts:
                raise LlmSimError(f"{usage}; cannot read {p!r}")
            opts[m.group(1)] = m.group(2)
        if set(opts) != {"k", "accept"}:
            raise LlmSimError(f"{usage}, got {text!r}")
        try:
            k = int(opts["k"])
            a = float(opts["accept"])
        except ValueError:
            raise LlmSimError(f"{usage}; k must be an integer and accept a number, got {text!r}") from None
        return SpecDecode(parts[0], k, a).checked()

    def checked(self) -> SpecDecode:
        if not 1 <= self.k <= 64:
            raise LlmSimError(f"--spec-decode: k must be 1 to 64 proposed tokens, is {self.k}")
        if not 0.0 <= self.accept <= 1.0:
            raise LlmSimError(f"--spec-decode: accept is a probability (0 to 1), is {self.accept}")
        return self

    def describe(self) -> str:
        return f"{getattr(self.draft, 'name', self.draft)}, k={self.k}, accept={self.accept:g}"


@dataclass(frozen=True)
class RunConfig:
    model: Any = DEFAULT_MODEL  # a model-library preset, an ONNX file or a rduflow.models.ModelConfig
    arch: Any = DEFAULT_ARCH  # a preset, an architecture file, or an Arch (load_arch, with overrides)
    devices: int | None = None  # sockets (RDU) or GPUs; None: one node (RDU) or one GPU
    batch: int = 1
    prompt: int = 1024
    gen: int = 128
    weights: str = "bf16"
    kv_dtype: str = "bf16"
    spec: SpecDecode | None = None
    prefix_cache: int = 0  # prompt tokens already in the KV cache
    cuda_graphs: bool = True  # GPU only
    kernel_looping: bool = True  # RDU only
    fusion: str = "auto"  # RDU only: the compiler back end's fusion mode
    tolerance: float = 0.005  # ITL interpolation: relative chord error allowed at a midpoint
    workers: int | None = None  # processes simulating RDU steps at once (None: the CPUs this process may use)
    allow_long_context: bool = False  # prompt + gen may exceed the model's max_position_embeddings
    host_overheads: bool = True  # the serving engine's CPU time per request and per step (serving/host.py)
    host_power: bool = True  # count the host and system around the devices in the energy (docs/energy.md)
    usd_per_device_hour: float | None = None  # the price of a device; None: the target's [price], if any

    def checked(self) -> RunConfig:
        for name, v, lo in (("--batch", self.batch, 1), ("--prompt", self.prompt, 1), ("--gen", self.gen, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise LlmSimError(f"{name} must be an integer >= {lo}, is {v!r}")
        if self.devices is not None and (not isinstance(self.devices, int) or self.devices < 1):
            raise LlmSimError(f"the device count (--sockets / --gpus) must be a positive integer, is {self.devices!r}")
        if self.weights not in WEIGHT_DTYPES:
            raise LlmSimError(f"--weights must be one of {', '.join(WEIGHT_DTYPES)}, is {self.weights!r}")
        if self.kv_dtype not in KV_DTYPES:
            raise LlmSimError(f"--kv-dtype must be one of {', '.join(KV_DTYPES)}, is {self.kv_dtype!r}")
        if not 0 <= self.prefix_cache < self.prompt:
            raise LlmSimError(f"--prefix-cache must be 0 to prompt-1 = {self.prompt - 1} cached tokens "
                              f"(at least one prompt token is computed), is {self.prefix_cache}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise LlmSimError(f"workers must be a positive integer, is {self.workers!r}")
        if not 0 < self.tolerance < 0.5:
            raise LlmSimError(f"the interpolation tolerance must be between 0 and 0.5, is {self.tolerance}")
        p = self.usd_per_device_hour
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1e5):
            raise LlmSimError(f"--usd-per-device-hour must be a price above 0 (up to 100000), is {p!r}")
        if self.spec is not None:
            self.spec.checked()
        return self
