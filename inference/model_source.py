"""What a MODEL argument names, read the same way by every command that takes one
(``simulate``, ``compare``, ``compile``, ``models show``, ``models export``).

In this order: a folder holding a Hugging Face ``config.json``; a file, which is a
``config.json`` when its name ends in ``.json`` or its text starts with ``{``, else an ONNX
model or IR text (``compiler.loading.load_module`` tells those two apart); anything that looks
like a path but names nothing is a missing file; the rest is a model-library preset name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rduflow.compiler.loading import LoadError, read_head
from rduflow.models import ModelConfig, ModelError, get_config, load_config_json

# Suffixes that mark an argument as a file name rather than a preset name.
_FILE_SUFFIXES = (".json", ".onnx", ".rdu")


@dataclass(frozen=True)
class ModelSource:
    """A resolved MODEL argument: a configuration (preset or config.json) to build graphs
    from, or a model file (ONNX or IR text) to load. ``dims`` are the ``--dim`` overrides:
    a symbol of the graph to a role (``batch``, ``seq``, ``past``) or a value."""

    spec: str  # the argument as given
    config: ModelConfig | None = None  # a preset or a config.json
    path: Path | None = None  # the config.json, or the ONNX / IR file
    dims: tuple[tuple[str, str | int], ...] = ()  # (NAME, ROLE or N), one per name

    @property
    def name(self) -> str:
        """What messages call it: the configuration's name, else the argument as given."""
        return self.config.name if self.config else self.spec

    @property
    def is_preset(self) -> bool:
        return self.path is None

    @property
    def is_file_model(self) -> bool:
        """An ONNX model or IR text (its graphs are loaded, not built)."""
        return self.config is None

    def with_dims(self, dims: dict[str, str | int]) -> ModelSource:
        return ModelSource(self.spec, self.config, self.path, tuple(dims.items()))


def resolve_model(spec: str) -> ModelSource:
    """The model ``spec`` names (a one-line error naming it when there is none)."""
    path = Path(spec)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise LoadError(f"{path}: a folder without a config.json (a model is a preset name, a Hugging Face "
                            "config.json or a folder holding one, an ONNX file or IR text)")
        return ModelSource(spec, load_config_json(config), config)
    if path.is_file():
        if _is_json(path):
            return ModelSource(spec, load_config_json(path), path)
        return ModelSource(spec, path=path)
    if path.exists():
        raise LoadError(f"{path}: not a regular file (a model is a preset name, a Hugging Face config.json, "
                        "an ONNX file or IR text)")
    if path.suffix.lower() in _FILE_SUFFIXES or "/" in spec:
        raise LoadError(f"{path}: no such file")
    try:
        return ModelSource(spec, get_config(spec))
    except ModelError as e:  # it names close presets
        raise ModelError(f"{spec}: no such file, and not a model preset ({e})") from None


def _is_json(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    return read_head(path, 256).lstrip()[:1] == b"{"
