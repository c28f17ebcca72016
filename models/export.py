"""Writing built models to disk, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import TensorProto

from .config import ModelError


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` through a temporary file and a rename, so readers never see
    a partial file. Shape-only weights name an external data file that holds no bytes; it is
    created empty beside the model (if absent) so the file passes ``onnx.checker`` by path."""
    out = Path(path)
    if not out.parent.is_dir():
        raise ModelError(f"cannot write {out}: directory {out.parent} does not exist")
    for location in sorted(_external_locations(model)):
        sidecar = out.parent / location
        if not sidecar.exists():
            _atomic_write(sidecar, b"")
    _atomic_write(out, model.SerializeToString())
    return out


def _external_locations(model: onnx.ModelProto) -> set[str]:
    return {e.value for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL
            for e in t.external_data if e.key == "location"}


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ModelError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode any tool's would
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ModelError(f"cannot write {path}: {e.strerror}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask
