"""Reading and writing modules for the command line.

In: IR text (``.rdu``) or an ONNX model, told apart by suffix or, failing that, by content.
Out: IR text written atomically; weights held in memory go to a ``.npz`` beside it, which the
text refers to as ``npz("NAME.npz", "weight")``; relative weight paths are rewritten so they
still point at the same files from the new location.

Every file a command writes goes through :class:`OutputFiles` (or :func:`write_atomically`, one
file): a temporary file in the destination's folder, renamed into place once every file of the
output is complete, so a failure (a full disk, a file-size limit, an interrupt) leaves the old
files or none, never half of one. :func:`check_writable` tells a command before its work starts
that an output cannot be written.
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
    head = read_head(path, 4096)
    # IR text is printable; a serialized protobuf starts with a field tag such as 0x08 (ir_version).
    return any(b < 0x20 and b not in b"\t\n\r" for b in head)


def read_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file, to tell its format (a one-line error if unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise LoadError(f"{path}: cannot read: {e.strerror}") from None


def sidecar_path(path: Path) -> Path:
    """Where :func:`save_module` puts in-memory weights: ``model.rdu`` -> ``model.npz``."""
    return path.with_suffix(".npz")


def save_module(module: Module, path: str | Path, files: OutputFiles | None = None) -> list[Path]:
    """Write ``module`` as IR text to ``path`` (and in-memory weights beside it); returns the files written.

    Each file is written to a temporary name in the same folder and renamed into place, so
    an error never leaves a half-written file behind. With ``files`` they join that set of
    outputs, renamed when it is committed.
    """
    if files is None:
        with OutputFiles() as files:
            return save_module(module, path, files)
    path = destination(path)  # the weights go beside the file a link points to
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
        files.write(npz, lambda f: _write_npz(f, arrays))
        written.append(npz)
    text = print_module(view)
    files.write(path, lambda f: f.write(text.encode()))
    written.append(path)
    return written


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays as a .npz archive, atomically."""
    write_atomically(Path(path), lambda f: _write_npz(f, arrays))


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


def check_writable(path: str | Path, flag: str | None = None) -> Path:
    """``path`` as an output file, or a one-line :class:`LoadError` (naming ``flag``, e.g. ``-o``,
    and the reason) when it cannot be written: called before a command's work starts.

    The folder is tried by creating (and removing) a temporary file in it, as the real write
    will: that answers for permissions and read-only file systems alike.
    """
    name = f"{flag} {path}" if flag else str(path)
    path = destination(path, name)
    if path.is_dir():
        raise LoadError(f"{name}: is a folder, not a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        existing = _existing_ancestor(folder)
        if existing.is_dir():
            raise LoadError(f"{name}: folder {folder} does not exist")
        raise LoadError(f"{name}: {existing} is not a folder")
    _probe(folder, name, "")
    return path


def read_mapping(path, source: str, error: type[Exception], kind: str) -> dict:
    """A TOML file (by its ``.toml`` suffix) or else YAML, holding a mapping; every problem is one
    ``error`` line starting with ``source`` (a path, or a preset's name) that says which
    ``kind`` of file it should be."""
    import tomllib

    import yaml

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{source}: cannot read the {kind}: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = tomllib.loads(text) if str(path).lower().endswith(".toml") else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{source}: not valid TOML: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{source}: not valid YAML{where}: {getattr(e, 'problem', None) or e}".replace("\n", " ")) from None
    if data is None:
        raise error(f"{source}: the {kind} is empty")
    if not isinstance(data, dict):
        raise error(f"{source}: a {kind} is a mapping of fields, not {type(data).__name__}")
    return data


def destination(path: str | Path, name: str | None = None) -> Path:
    """Where writing ``path`` lands: through a symbolic link to its target (renaming a file over
    the link would replace the link), and never over a device, pipe or socket (a rename would
    replace /dev/null itself)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file() and not path.is_dir():
        raise LoadError(f"{name or path}: exists and is not a regular file (a device, pipe or socket); "
                        "give a file name")
    return path


def check_folder(folder: str | Path, flag: str | None = None) -> Path:
    """``folder`` (which the command creates if missing) can receive files: its nearest existing
    ancestor is a folder we may create files in; else a one-line :class:`LoadError`."""
    folder = Path(folder)
    name = f"{flag} {folder}" if flag else str(folder)
    existing = _existing_ancestor(folder)
    below = "" if existing == folder else f" (to hold {folder})"
    if not existing.is_dir():
        raise LoadError(f"{name}: {existing} is not a folder{below}")
    _probe(existing, name, below)
    return folder


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _probe(folder: Path, name: str, below: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".rduflow-probe-")
    except OSError as e:
        raise LoadError(f"{name}: cannot write in folder {folder}{below}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


class OutputFiles:
    """The files of one output, written together: each to a temporary file in its folder, all
    renamed into place by :meth:`commit` (on leaving a ``with`` block normally), or all removed
    (on an error), so no output is ever half written. Errors of the file system are one-line
    :class:`LoadError` naming the path."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, str]] = []  # (destination, temporary file)

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

    def write(self, path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
        """Write ``path``'s content with ``write(f)`` into a temporary file beside it."""
        path = destination(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.",
                                       suffix=".tmp")
        except OSError as e:
            raise LoadError(f"{path}: cannot write: {e.strerror or e}") from None
        self._staged.append((path, tmp))
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), _file_mode())  # mkstemp makes files private; give the usual permissions
                write(f)
        except OSError as e:
            raise LoadError(f"{path}: cannot write: {e.strerror or e}") from None
        return path

    def commit(self) -> None:
        staged, self._staged = self._staged, []
        try:
            for i, (path, tmp) in enumerate(staged):
                os.replace(tmp, path)
        except OSError as e:
            for _, rest in staged[i:]:
                _remove(rest)
            raise LoadError(f"{path}: cannot write: {e.strerror or e}") from None

    def discard(self) -> None:
        staged, self._staged = self._staged, []
        for _, tmp in staged:
            _remove(tmp)


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """One file written through :class:`OutputFiles`: complete, or not at all."""
    with OutputFiles() as files:
        files.write(path, write)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
