"""Reading and writing modules for the command line.

In: IR text (``.rdu``) or an ONNX model, told apart by suffix or, failing that, by content.
Out: IR text written atomically; weights held in memory go to a ``.npz`` beside it, which the
text refers to as ``npz("NAME.npz", "weight")``; relative weight paths are rewritten so they
still point at the same files from the new location.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from rduflow.ir import ExternalFile, InMemory, Module, NpzEntry, OnnxInitializer, Weight, parse_file, print_module
from rduflow.ir.errors import RduflowError
from rduflow.ir.printer import hoist_large_constants
from rduflow.ir.weights import WeightError, confined_file


class LoadError(RduflowError):
    """A model file that cannot be read or written."""


def load_module(spec: str | Path, *, shapes_only: bool = False) -> Module:
    """Read IR text or import an ONNX model. ``shapes_only`` imports ONNX weights as shapes
    without data (IR text never holds weight data: its weights are references already)."""
    path = Path(spec)
    if not path.exists():
        raise LoadError(f"{path}: no such file")
    if path.is_dir():
        raise LoadError(f"{path}: is a directory, not a model file (.rdu IR text or .onnx)")
    if _is_onnx(path):
        try:
            from rduflow.compiler.frontend.onnx import import_onnx
        except ImportError as e:  # the importer's package, or import_onnx in it, is missing
            if (e.name or "").startswith("rduflow.compiler.frontend"):
                raise LoadError(f"{path}: cannot import ONNX models: the ONNX importer is not installed") from None
            raise
        return import_onnx(path, shapes_only=shapes_only)
    module = parse_file(path)
    _check_weight_paths(module, path)
    return module


def _check_weight_paths(module: Module, path: Path) -> None:
    """IR text from elsewhere may name any file as a weight: confine it as ONNX external data is."""
    for w in module.weights.values():
        if not isinstance(w.source, (ExternalFile, OnnxInitializer, NpzEntry)):
            continue
        try:
            confined_file(w.source.path, module.base_dir or Path("."))
        except WeightError as e:
            raise LoadError(f"{path}: weight @{w.name}: file {e}") from None


def _is_onnx(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return True
    if suffix == ".rdu":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise LoadError(f"{path}: cannot read: {e.strerror}") from None
    # IR text is printable; a serialized protobuf starts with a field tag such as 0x08 (ir_version).
    return any(b < 0x20 and b not in b"\t\n\r" for b in head)


def sidecar_path(path: Path) -> Path:
    """Where :func:`save_module` puts in-memory weights: ``model.rdu`` -> ``model.npz``."""
    return path.with_suffix(".npz")


def save_module(module: Module, path: str | Path) -> list[Path]:
    """Write ``module`` as IR text to ``path`` (and in-memory weights beside it); returns the files written.

    Each file is written to a temporary name in the same folder and renamed into place, so
    an error never leaves a half-written file behind.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        raise LoadError(f"{path}: IR text cannot be saved as .npz (that name is kept for its weights); use .rdu")
    out_dir = path.parent if str(path.parent) else Path(".")
    if not out_dir.is_dir():
        raise LoadError(f"{path}: folder {out_dir} does not exist")
    npz = sidecar_path(path)
    module = hoist_large_constants(module)  # their data goes to the .npz
    arrays = {w.name: w.source.array for w in module.weights.values()
              if isinstance(w.source, InMemory) and w.source.array is not None}
    # Weight files must lie in the model's folder (load_module refuses others): data from
    # outside the output's folder is copied into the .npz rather than referenced as ../.
    for w in module.weights.values():
        rel = getattr(_rebase(w.source, module.base_dir, out_dir), "path", None)
        if rel is not None and (os.path.isabs(rel) or rel.split(os.sep)[0] == os.pardir):
            arrays[w.name] = w.load(module.base_dir)
    if arrays:
        # Weights already stored in the .npz we are about to replace must move into the new one.
        for w in module.weights.values():
            if isinstance(w.source, NpzEntry) and _resolve(w.source.path, module.base_dir) == npz.resolve():
                arrays[w.name] = w.load(module.base_dir)
    weights = []
    for w in module.weights.values():
        source = NpzEntry(npz.name, w.name) if w.name in arrays else _rebase(w.source, module.base_dir, out_dir)
        weights.append(Weight(w.name, w.type, source))
    view = Module(module.graphs.values(), weights, base_dir=out_dir)  # shares the graphs; changes nothing
    view.attrs = module.attrs
    written = []
    if arrays:
        save_arrays(npz, arrays)
        written.append(npz)
    text = print_module(view)
    _write_atomically(path, lambda f: f.write(text.encode()))
    written.append(path)
    return written


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays as a .npz archive, atomically."""
    _write_atomically(Path(path), lambda f: _write_npz(f, arrays))


def _rebase(source, base_dir: Path | None, out_dir: Path):
    """A file-backed source whose relative path is re-expressed relative to ``out_dir``."""
    rel = getattr(source, "path", None)
    if rel is None or os.path.isabs(rel):
        return source
    new = os.path.relpath(_resolve(rel, base_dir), out_dir.resolve())
    return source if new == rel else dataclasses.replace(source, path=new)


def _resolve(rel: str, base_dir: Path | None) -> Path:
    return ((base_dir or Path(".")) / rel).resolve()


def _write_npz(f: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    # np.savez takes names as keyword arguments, so a weight called "file" would clash; write the zip directly.
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, arr in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(arr), allow_pickle=False)


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes files private; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise LoadError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
