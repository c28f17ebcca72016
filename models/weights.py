"""Model parameters as ONNX initializers: shape-only or random, in the chosen precision.

Shape-only initializers carry no bytes: each is declared as ONNX external data at its
offset in a weights file that holds nothing (``<model>.shape-only.bin``), so the graph
states every parameter's name, type and size and nothing can be executed by mistake.

Random initializers are drawn per tensor from ``(seed, crc32(name))``, so a parameter has
the same values in every variant and precision built from the same seed (the prefill and
decode graphs of one model share their weights exactly).

Weight-only quantization (int8, int4) applies to the projection matrices of the
transformer blocks (attention, MLP, experts); embeddings, the LM head, norms, biases and
the MoE router stay in the activation precision, as GPTQ/AWQ-style checkpoints keep them.
Quantized weights are symmetric (no zero point) and dequantized by a standard
DequantizeLinear: int8 per output channel, int4 in blocks along the input dimension.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from onnx import TensorProto, numpy_helper

from .config import ModelError
from .onnx_writer import OnnxWriter


@dataclass(frozen=True)
class ElemType:
    name: str
    onnx: int
    numpy: type
    bits: int


ELEM_TYPES = {e.name: e for e in [
    ElemType("f32", TensorProto.FLOAT, np.float32, 32),
    ElemType("bf16", TensorProto.BFLOAT16, ml_dtypes.bfloat16, 16),
    ElemType("f16", TensorProto.FLOAT16, np.float16, 16),
    ElemType("int8", TensorProto.INT8, np.int8, 8),
    ElemType("int4", TensorProto.INT4, ml_dtypes.int4, 4),
]}
WEIGHT_DTYPES = tuple(ELEM_TYPES)
ACT_DTYPES = ("f32", "bf16", "f16")
QMAX = {"int8": 127, "int4": 7}
# ONNX protobufs cannot exceed 2 GiB; random weights are stored inline, so they must fit.
MAX_RANDOM_BYTES = 2**31 - 2**26


@dataclass(frozen=True)
class Precision:
    weights: str  # f32 | bf16 | f16 | int8 | int4
    act: str  # activations, KV cache, unquantized parameters, quantization scales
    block: int  # int4 block size along the input dimension

    @staticmethod
    def of(dtype: str, act_dtype: str | None, block: int) -> Precision:
        if dtype not in ELEM_TYPES:
            raise ModelError(f"unknown weight dtype '{dtype}'; choose one of {', '.join(WEIGHT_DTYPES)}")
        if act_dtype is None:
            # Weight-only quantized models run their activations in bf16 (W8A16, W4A16).
            act_dtype = dtype if dtype in ACT_DTYPES else "bf16"
        if act_dtype not in ACT_DTYPES:
            raise ModelError(f"unknown activation dtype '{act_dtype}'; choose one of {', '.join(ACT_DTYPES)}")
        if dtype in ACT_DTYPES and act_dtype != dtype:
            raise ModelError(f"act_dtype applies to int8/int4 weights only; {dtype} weights compute in {dtype}")
        if block < 1:
            raise ModelError(f"the int4 block size must be positive, got {block}")
        return Precision(dtype, act_dtype, block)

    @property
    def quantized(self) -> bool:
        return self.weights in QMAX

    @property
    def act_type(self) -> ElemType:
        return ELEM_TYPES[self.act]


class WeightStore:
    """Declares parameters on an :class:`OnnxWriter`; returns the value a consumer reads."""

    def __init__(self, writer: OnnxWriter, precision: Precision, random: bool, seed: int, location: str):
        self.w = writer
        self.p = precision
        self.random = random
        self.seed = seed
        self.location = location
        self.offset = 0

    def param(self, name: str, shape: tuple[int, ...], init: str, quantize: bool = False) -> str:
        """A parameter, ``init`` one of linear (fan-in scaled), embedding, norm, bias."""
        if quantize and self.p.quantized:
            return self._quantized(name, shape, init)
        master = self._master(name, shape, init, self.p.act_type)
        return self._add(name, shape, self.p.act_type, master)

    def _quantized(self, name: str, shape: tuple[int, ...], init: str) -> str:
        # Contract over the second-to-last axis (weights are [..., in, out]).
        axis = len(shape) - 2
        k = shape[axis]
        qtype = ELEM_TYPES[self.p.weights]
        per_channel = qtype.name == "int8" and len(shape) == 2
        block = k if qtype.name == "int8" else self.p.block
        nblocks = -(-k // block)
        scale_shape = (shape[1],) if per_channel else shape[:axis] + (nblocks,) + shape[axis + 1:]
        master = self._master(name, shape, init, qtype)
        q = s = None
        if master is not None:
            q, s = _quantize(master, axis, block, QMAX[qtype.name], self.p.act_type.numpy)
            if per_channel:
                s = s.reshape(scale_shape)
        qname = self._add(name, shape, qtype, q)
        sname = self._add(f"{name}_scale", scale_shape, self.p.act_type, s)
        attrs = {"axis": 1} if per_channel else {"axis": axis, "block_size": block}
        return self.w.op("DequantizeLinear", [qname, sname], f"{name}_dequantized", **attrs)

    def _master(self, name: str, shape: tuple[int, ...], init: str, stored: ElemType) -> np.ndarray | None:
        """The f32 values of a random parameter (None when shape-only)."""
        if not self.random:
            return None
        if self.offset + _nbytes(shape, stored) > MAX_RANDOM_BYTES:
            raise ModelError(
                f"random weights for this model exceed ONNX's 2 GiB limit at '{name}'; use "
                "weights='shape-only' (or a smaller config) for a model this size")
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        x = rng.standard_normal(shape, dtype=np.float32)
        if init == "linear":
            return x * np.float32(1 / math.sqrt(shape[-2]))
        if init == "embedding":
            return x
        if init == "norm":
            return 1 + np.float32(0.1) * x
        if init == "bias":
            return np.float32(0.1) * x
        raise AssertionError(init)

    def _add(self, name: str, shape: tuple[int, ...], et: ElemType, data: np.ndarray | None) -> str:
        nbytes = _nbytes(shape, et)
        self.offset += nbytes
        if data is not None:
            return self.w.initializer(numpy_helper.from_array(data.astype(et.numpy), name))
        t = TensorProto(name=name, data_type=et.onnx, dims=shape, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", self.location), ("offset", self.offset - nbytes), ("length", nbytes)):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
        return self.w.initializer(t)


def _nbytes(shape: tuple[int, ...], et: ElemType) -> int:
    return (math.prod(shape) * et.bits + 7) // 8


def _quantize(w: np.ndarray, axis: int, block: int, qmax: int, scale_type: type) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization in blocks of ``block`` along ``axis``: (codes, scales)."""
    k = w.shape[axis]
    nblocks = -(-k // block)
    pad = nblocks * block - k
    wp = np.pad(w, [(0, pad) if a == axis else (0, 0) for a in range(w.ndim)])
    blocked = wp.reshape(w.shape[:axis] + (nblocks, block) + w.shape[axis + 1:])
    amax = np.abs(blocked).max(axis=axis + 1)
    # Round the scale to its stored precision first, so codes are computed against it.
    scale = np.where(amax > 0, amax / qmax, 1).astype(scale_type)
    full = np.repeat(scale.astype(np.float32), block, axis=axis)
    full = full[tuple(slice(0, k) if a == axis else slice(None) for a in range(w.ndim))]
    q = np.clip(np.rint(w / full), -qmax - 1, qmax).astype(np.int8)
    return q, scale
