"""ONNX import: ``import_onnx(path_or_model)`` converts an ONNX model to an IR module.

See docs/importer.md: converters per operator (``ops/``), versioned by opset (``registry``);
shape arithmetic folded at import time (``symbolic``, ``context``); weights as lazy
references (``importer``, ``model_file``).
"""

from .errors import OnnxImportError, UnsupportedOp, UnsupportedOperatorsError
from .importer import import_onnx

__all__ = ["OnnxImportError", "UnsupportedOp", "UnsupportedOperatorsError", "import_onnx"]
