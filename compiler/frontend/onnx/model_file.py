"""Reading an ONNX model without its weights, and checking it before conversion.

The protobuf is read with ``load_external_data=False``: external tensors stay references,
so models of any size load in the time their graph takes. Checks here are structural
(text is UTF-8, opsets, SSA order, operator schemas, external data locations); a failure is one
:class:`OnnxImportError` naming the file and the node or field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import onnx
from onnx import defs

from rduflow.ir.weights import WeightError, confined_file

from .errors import OnnxImportError

MIN_OPSET = 13
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class ModelSource:
    proto: onnx.ModelProto
    path: Path | None  # the .onnx file, when the model came from one
    base_dir: Path  # where external data and the module's relative weight paths resolve
    where: str  # how messages name the model

    @property
    def opsets(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for imp in self.proto.opset_import:
            out["" if imp.domain in DEFAULT_DOMAINS else imp.domain] = imp.version
        return out


def open_model(model: str | Path | onnx.ModelProto, base_dir: Path | None) -> ModelSource:
    if isinstance(model, onnx.ModelProto):
        return ModelSource(model, None, Path(base_dir) if base_dir else Path.cwd(), "<ONNX model>")
    if not isinstance(model, (str, os.PathLike)):
        raise OnnxImportError(f"expected an ONNX file path or ModelProto, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise OnnxImportError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf reports corruption with several exception types
        raise OnnxImportError(f"{path}: not a readable ONNX model (truncated or corrupt?): {e}") from None
    return ModelSource(proto, path, Path(base_dir) if base_dir else path.parent, str(path))


def node_label(node: onnx.NodeProto, index: int) -> str:
    """A node's name, or a stand-in naming its position and first output when it has none."""
    if node.name:
        return node.name
    out = node.output[0] if node.output else "?"
    return f"#{index} {node.op_type} -> {out}"


def check_model(src: ModelSource) -> None:
    """Structural checks; conversion may assume what they establish."""
    m = src.proto
    w = src.where
    if not m.HasField("graph"):
        raise OnnxImportError(f"{w}: the model has no graph (truncated or not an ONNX model?)")
    _check_text(m, "", w)
    opsets = src.opsets
    if "" not in opsets:
        raise OnnxImportError(f"{w}: the model imports no ai.onnx opset")
    newest = defs.onnx_opset_version()
    v = opsets[""]
    if v < MIN_OPSET:
        raise OnnxImportError(
            f"{w}: ai.onnx opset {v} is older than {MIN_OPSET}, the oldest the importer converts; "
            f"upgrade it with onnx.version_converter.convert_version(model, {MIN_OPSET})"
        )
    if v > newest:
        raise OnnxImportError(f"{w}: ai.onnx opset {v} is newer than the installed onnx supports ({newest})")
    g = m.graph
    if len(g.sparse_initializer):
        raise OnnxImportError(f"{w}: sparse initializers are not supported")
    defined: set[str] = set()
    for vi in g.input:
        if vi.name in defined or not vi.name:
            raise OnnxImportError(f"{w}: graph input '{vi.name}' is unnamed or listed twice")
        defined.add(vi.name)
    inits: set[str] = set()
    for t in g.initializer:
        if not t.name or t.name in inits:
            raise OnnxImportError(f"{w}: initializer '{t.name}' is unnamed or defined twice")
        inits.add(t.name)
    defined |= inits
    for i, node in enumerate(g.node):
        label = node_label(node, i)
        for name in node.input:
            if name and name not in defined:
                raise OnnxImportError(
                    f"{w}: node '{label}' ({node.op_type}) uses '{name}', which no graph input, initializer "
                    "or earlier node defines (the graph is invalid or not topologically sorted)"
                )
        _check_schema(node, label, opsets, w)
        for name in node.output:
            if not name:
                continue
            if name in defined:
                raise OnnxImportError(f"{w}: node '{label}' ({node.op_type}) redefines '{name}'")
            defined.add(name)
    for vo in g.output:
        if vo.name not in defined:
            raise OnnxImportError(f"{w}: graph output '{vo.name}' is not computed by the graph")


def _check_text(msg: Any, field: str, w: str) -> None:  # any protobuf message
    """Every string field is valid UTF-8 (protobuf hands invalid ones over as bytes): names, op types,
    dim_params and locations are text from here on."""
    for fd, value in msg.ListFields():
        name = f"{field}.{fd.name}" if field else fd.name
        if fd.type == fd.TYPE_STRING:
            repeated = not isinstance(value, (str, bytes))
            for i, v in enumerate(value if repeated else [value]):
                if isinstance(v, bytes):
                    at = f"{name}[{i}]" if repeated else name
                    raise OnnxImportError(
                        f"{w}: {at} is not valid UTF-8 ({v[:40]!r}); ONNX strings are text, so the file is "
                        "corrupt or its exporter is broken: re-export the model"
                    )
        elif fd.type == fd.TYPE_MESSAGE:
            if hasattr(value, "ListFields"):  # one message, not a repeated field of them
                _check_text(value, name, w)
            else:
                for i, sub in enumerate(value):
                    _check_text(sub, f"{name}[{i}]", w)


def _check_schema(node: onnx.NodeProto, label: str, opsets: dict[str, int], w: str) -> None:
    domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
    if domain not in opsets:
        raise OnnxImportError(f"{w}: node '{label}' uses domain '{node.domain}', which the model does not import")
    if not defs.has(node.op_type, domain):
        return  # an operator onnx does not define (a runtime's contrib op): its converter checks it
    try:
        schema = defs.get_schema(node.op_type, opsets[domain], domain)
    except defs.SchemaError:
        raise OnnxImportError(
            f"{w}: node '{label}': {node.op_type} does not exist in opset {opsets[domain]} of "
            f"'{domain or 'ai.onnx'}'"
        ) from None
    n_in = len(node.input)
    if n_in < schema.min_input or n_in > schema.max_input:
        raise OnnxImportError(
            f"{w}: node '{label}' ({node.op_type}) has {n_in} input(s); opset {opsets[domain]} takes "
            f"{schema.min_input} to {schema.max_input}"
        )
    if not schema.min_output <= len(node.output) <= schema.max_output:
        raise OnnxImportError(
            f"{w}: node '{label}' ({node.op_type}) has {len(node.output)} output(s); it gives "
            f"{schema.min_output} to {schema.max_output}"
        )
    for i in range(n_in):
        if not node.input[i] and i < len(schema.inputs) and schema.inputs[i].option == defs.OpSchema.FormalParameterOption.Single:
            raise OnnxImportError(f"{w}: node '{label}' ({node.op_type}) leaves required input #{i} empty")
    seen = set()
    for a in node.attribute:
        if a.name in seen:
            raise OnnxImportError(f"{w}: node '{label}' ({node.op_type}) repeats attribute '{a.name}'")
        seen.add(a.name)
        spec = schema.attributes.get(a.name)
        if spec is None:
            raise OnnxImportError(f"{w}: node '{label}' ({node.op_type}) has unknown attribute '{a.name}'")
        if a.type != spec.type and not a.ref_attr_name:
            raise OnnxImportError(
                f"{w}: node '{label}' ({node.op_type}) attribute '{a.name}' is "
                f"{onnx.AttributeProto.AttributeType.Name(a.type)}, expected "
                f"{onnx.AttributeProto.AttributeType.Name(spec.type)}"
            )
    for name, spec in schema.attributes.items():
        if spec.required and name not in seen:
            raise OnnxImportError(f"{w}: node '{label}' ({node.op_type}) lacks required attribute '{name}'")


@dataclass(frozen=True)
class ExternalRef:
    location: str  # relative to the model's folder, as written in the model
    offset: int
    length: int | None


def external_ref(t: onnx.TensorProto, src: ModelSource, must_exist: bool) -> ExternalRef:
    """Where an external tensor's bytes are; refuses locations outside the model's folder."""
    info = {e.key: e.value for e in t.external_data}
    w = src.where
    loc = info.get("location")
    if not loc:
        raise OnnxImportError(f"{w}: initializer '{t.name}' is stored externally but names no location")
    try:
        target = confined_file(loc, src.base_dir)
    except WeightError as e:
        raise OnnxImportError(f"{w}: initializer '{t.name}': external data location {e}") from None
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise OnnxImportError(f"{w}: initializer '{t.name}': external data offset/length are not integers") from None
    if offset < 0 or (length is not None and length < 0):
        raise OnnxImportError(f"{w}: initializer '{t.name}': negative external data offset or length")
    if must_exist:
        if not target.is_file():
            raise OnnxImportError(
                f"{w}: initializer '{t.name}': external data file '{loc}' is missing from {src.base_dir.resolve()}; "
                "import with --shapes-only (shapes_only=True) to work without the weights"
            )
        size = target.stat().st_size
        if offset + (length or 0) > size:
            raise OnnxImportError(f"{w}: initializer '{t.name}': external data file '{loc}' is {size} bytes, "
                                  f"too short for offset {offset} + length {length}")
    return ExternalRef(PurePosixPath(*PureWindowsPath(loc).parts).as_posix(), offset, length)
