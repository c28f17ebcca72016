"""Weights are referenced, not held: where a weight's bytes live, loaded only on demand.

Compiling and simulating read a weight's *type* only; :meth:`Weight.load` is called by the
interpreter alone. Paths are kept as written and resolved against the module's base
directory, so a printed module still points at the same files when parsed back.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from .dtypes import DType
from .errors import RduflowError
from .types import TensorType


class WeightError(RduflowError, RuntimeError):
    """A weight's data cannot be produced (absent, unreadable, or the wrong size)."""


@dataclass(frozen=True)
class ShapeOnly:
    """No data anywhere: enough to compile and simulate, not to execute."""

    def describe(self) -> str:
        return "shape_only"


@dataclass(frozen=True, eq=False)
class InMemory:
    """Data held by this process (random weights, folded constants)."""

    array: np.ndarray | None = field(repr=False, default=None)

    def describe(self) -> str:
        return "memory"


@dataclass(frozen=True)
class ExternalFile:
    """Raw little-endian bytes in a file, as ONNX external data stores them."""

    path: str
    offset: int = 0
    length: int | None = None

    def describe(self) -> str:
        from .attributes import quote

        length = "" if self.length is None else f", length={self.length}"
        return f"external({quote(self.path)}, offset={self.offset}{length})"


@dataclass(frozen=True)
class OnnxInitializer:
    """An initializer stored inside an ONNX file, read when first needed."""

    path: str
    tensor: str

    def describe(self) -> str:
        from .attributes import quote

        return f"onnx({quote(self.path)}, {quote(self.tensor)})"


@dataclass(frozen=True)
class NpzEntry:
    """One array of a numpy ``.npz`` archive (how the CLI saves in-memory weights)."""

    path: str
    key: str

    def describe(self) -> str:
        from .attributes import quote

        return f"npz({quote(self.path)}, {quote(self.key)})"


WeightSource = ShapeOnly | InMemory | ExternalFile | OnnxInitializer | NpzEntry


def confined_file(location: str, folder: Path) -> Path:
    """The file ``location`` names relative to ``folder``, refused unless it stays inside it.

    A model's weight references (ONNX external data, paths in IR text) come from files anyone
    may have written: reading them must not reach other files (``..``, absolute paths,
    symlinks out, /dev, /proc) or block on a FIFO. The file need not exist (shape-only use);
    if it does, it must be a regular file. Raises :class:`WeightError` starting with the
    quoted location, for the caller to prefix with the weight it belongs to.
    """
    shown = repr(location if len(location) <= 80 else location[:60] + "...")
    rule = "weight files must be named relative to the model's folder and stay inside it"
    if "\0" in location:
        raise WeightError(f"{shown} contains a NUL character; {rule}")
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() or PureWindowsPath(location).drive:
        raise WeightError(f"{shown} is absolute; {rule}")
    if ".." in PureWindowsPath(location).parts:
        raise WeightError(f"{shown} leaves the model's folder ('..'); {rule}")
    base = folder.resolve()
    try:
        target = (base / location).resolve()
        mode = os.stat(target).st_mode if target.exists() else None
    except OSError as e:
        raise WeightError(f"{shown} is not a usable file name ({e.strerror or e}); {rule}") from None
    except RuntimeError:  # pathlib's report of a symlink loop
        raise WeightError(f"{shown} is a symlink loop; {rule}") from None
    if target != base and base not in target.parents:
        raise WeightError(f"{shown} resolves outside the model's folder ({target}); {rule}")
    if mode is not None and not stat.S_ISREG(mode):
        raise WeightError(f"{shown} is not a regular file (a folder, device or pipe); {rule}")
    return target


@dataclass(eq=False)
class Weight:
    name: str
    type: TensorType
    source: WeightSource = field(default_factory=ShapeOnly)

    @property
    def has_data(self) -> bool:
        return not isinstance(self.source, ShapeOnly) and not (
            isinstance(self.source, InMemory) and self.source.array is None
        )

    def load(self, base_dir: Path | None = None) -> np.ndarray:
        shape = self.type.concrete_shape()
        if shape is None:
            raise WeightError(f"weight @{self.name} has a symbolic shape {self.type}")
        arr = _read(self, base_dir or Path("."))
        want = self.type.dtype.numpy
        if arr.dtype != want and arr.dtype.kind == "V" and arr.dtype.itemsize == want.itemsize:
            arr = arr.view(want)  # .npz files keep ml_dtypes' types (bf16, fp8, int4) as raw bytes
        if arr.dtype != want:
            raise WeightError(f"weight @{self.name}: stored as {arr.dtype}, declared {self.type.dtype}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise WeightError(
                f"weight @{self.name}: {arr.size} elements stored, type {self.type} needs "
                f"{int(np.prod(shape, dtype=np.int64))}"
            )
        return arr.reshape(shape)


def _read(w: Weight, base: Path) -> np.ndarray:
    src = w.source
    if isinstance(src, ShapeOnly):
        raise WeightError(
            f"weight @{w.name} is shape-only: it has no data (import without --shapes-only, "
            "or build the model with random weights, to execute it)"
        )
    if isinstance(src, InMemory):
        if src.array is None:
            raise WeightError(f"weight @{w.name} was held in memory by another process; its data is gone")
        return src.array
    path = Path(src.path)
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise WeightError(f"weight @{w.name}: data file {path} does not exist")
    if isinstance(src, ExternalFile):
        dtype = w.type.dtype
        shape = w.type.concrete_shape() or ()
        n = int(np.prod(shape, dtype=np.int64))
        nbytes = (n * dtype.bits + 7) // 8
        if src.length is not None and src.length < nbytes:
            raise WeightError(f"weight @{w.name}: {src.length} bytes on disk, {nbytes} needed")
        size = path.stat().st_size
        if src.offset + nbytes > size:
            raise WeightError(
                f"weight @{w.name}: {path} is {size} bytes, too short for offset {src.offset} + {nbytes}"
            )
        with open(path, "rb") as f:
            f.seek(src.offset)
            raw = f.read(nbytes)
        return _from_bytes(raw, dtype, n)
    if isinstance(src, OnnxInitializer):
        return _onnx_initializer(path, src.tensor)
    if isinstance(src, NpzEntry):
        with np.load(path, allow_pickle=False) as z:
            if src.key not in z:
                raise WeightError(f"weight @{w.name}: {path} has no array '{src.key}'")
            return z[src.key]
    raise AssertionError(src)


def _from_bytes(raw: bytes, dtype: DType, n: int) -> np.ndarray:
    if dtype.bits == 4:
        # Two 4-bit values per byte, low nibble first (ONNX packing).
        b = np.frombuffer(raw, dtype=np.uint8)
        lo, hi = b & 0x0F, b >> 4
        nib = np.stack([lo, hi], axis=-1).reshape(-1)[:n]
        if dtype is DType.i4:
            nib = np.where(nib >= 8, nib.astype(np.int16) - 16, nib).astype(np.int8)
        return nib.astype(dtype.numpy)
    return np.frombuffer(raw, dtype=dtype.numpy.newbyteorder("<"), count=n).astype(dtype.numpy)


def _onnx_initializer(path: Path, name: str) -> np.ndarray:
    import onnx
    import onnx.numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends
        raise WeightError(f"cannot read {path}: {e}") from e
    for t in model.graph.initializer:
        if t.name == name:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                loc = next((e.value for e in t.external_data if e.key == "location"), "")
                try:
                    confined_file(loc, path.parent)
                except WeightError as e:
                    raise WeightError(f"{path}: initializer '{name}': external data location {e}") from None
                onnx.external_data_helper.load_external_data_for_tensor(t, str(path.parent))
            return onnx.numpy_helper.to_array(t)
    raise WeightError(f"{path} has no initializer '{name}'")
