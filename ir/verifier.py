"""Structural and type verification, run after every pass.

Checks: module attributes have their declared kinds (:mod:`.program`); every op is
registered with the right arity, regions and attributes; operands are defined before use in
the same graph (regions are isolated from above, so a region sees only its own arguments);
each result type equals what the op's inference computes; weight references resolve;
op-specific hooks pass. Diagnostics name the op and where it came from.
"""

from __future__ import annotations

from collections.abc import Callable

from .attributes import AttrError, AttrKind, AttrSpec, coerce
from .core import Graph, Module, Operation, Value
from .dims import DimError
from .errors import RduflowError
from .opdef import OpDef, TypeInferenceError, lookup_opdef
from .program import MODULE_ATTRS
from .types import TensorType


_FREE_FORM = AttrSpec(AttrKind.ANY)  # a module attribute without a declared kind


class VerifyError(RduflowError, ValueError):
    """One or more diagnostics; ``str()`` lists them all, one per line."""

    def __init__(self, op: Operation | None, message: str, diagnostics: list[str] | None = None):
        self.op = op
        self.diagnostics = diagnostics or [f"{op.where()}: {message}" if op is not None else message]
        super().__init__("\n".join(self.diagnostics))


def verify_module(module: Module) -> None:
    diags: list[str] = []
    for k, v in module.attrs.items():
        spec = MODULE_ATTRS.get(k, _FREE_FORM)
        try:
            spec.check(v, k)
        except AttrError as e:
            diags.append(f"module {e}")
    for name, w in module.weights.items():
        if w.name != name:
            diags.append(f"weight @{name}: listed under another name than its own (@{w.name})")
        _check_type(w.type, lambda: f"weight @{name}", diags)
    for name, g in module.graphs.items():
        if g.name != name:
            diags.append(f"@{name}: graph is listed under another name than its own (@{g.name})")
        _verify_graph(g, module, diags, f"@{g.name}")
    if diags:
        raise VerifyError(None, "", diags)


def verify_graph(graph: Graph, module: Module | None = None) -> None:
    diags: list[str] = []
    _verify_graph(graph, module, diags, f"@{graph.name}")
    if diags:
        raise VerifyError(None, "", diags)


def _verify_graph(g: Graph, module: Module | None, diags: list[str], where: str) -> None:
    defined: set[Value] = set()
    for i, a in enumerate(g.args):
        what = f"argument #{i} %{a.name or '?'}"
        if a.owner is not g:
            diags.append(f"{where}: {what} belongs to another graph")
        _check_type(a.type, lambda: f"{where}: {what}", diags)
        defined.add(a)
    for op in g.ops:
        if op.parent is not g:
            diags.append(f"{where}: {op.where()}: op is listed in a graph that does not own it")
        for i, v in enumerate(op.operands):
            if v not in defined:
                why = "is used before it is defined" if _defined_later(g, v) else "is not defined in this graph (regions see only their arguments)"
                diags.append(f"{where}: {op.where()}: operand #{i} %{v.name or '?'} {why}")
        _verify_op(op, module, diags, where)
        for r in op.results:
            if r in defined:
                diags.append(f"{where}: {op.where()}: result defined twice")
            if r.owner is not op:
                diags.append(f"{where}: {op.where()}: result #{r.index} belongs to another op")
            _check_type(r.type, lambda: f"{where}: {op.where()}: result #{r.index}", diags)
            defined.add(r)
        for k, r in enumerate(op.regions):
            if r.parent_op is not op:
                diags.append(f"{where}: {op.where()}: region #{k} has the wrong parent")
            _verify_graph(r, module, diags, f"{where}/{op.opname}#{k}")
    for i, v in enumerate(g.outputs):
        if v not in defined:
            diags.append(f"{where}: output #{i} %{v.name or '?'} is not defined in this graph")
    if len(g.output_names) not in (0, len(g.outputs)):
        diags.append(f"{where}: {len(g.output_names)} output names for {len(g.outputs)} outputs")


# What verification computes again and again for the same inputs: types already found
# well formed, and result types inferred per op signature (inference is a function of the
# opname, operand types and attributes alone). Only successes are kept, so a diagnostic is
# always computed afresh; the caches are cleared when full.
_CACHE_LIMIT = 1 << 16
_good_types: set[TensorType] = set()
_inferred: dict[tuple, list[TensorType]] = {}


def _check_type(t: TensorType, what: Callable[[], str], diags: list[str]) -> None:
    if t in _good_types:
        return
    bad = len(diags)
    for d in t.shape:
        v = d.maybe_int()
        if d.is_const and (v is None or v < 0):
            diags.append(f"{what()}: type {t} has dimension {d}, which is not a non-negative integer")
    if len(diags) == bad:
        if len(_good_types) >= _CACHE_LIMIT:
            _good_types.clear()
        _good_types.add(t)


def _infer(d: type[OpDef], op: Operation) -> list[TensorType]:
    """``d.infer`` of the op's operand types and attributes, remembered by their values."""
    types = [v.type for v in op.operands]
    try:  # attribute values with their classes: True == 1, but an attribute may care which
        key = (op.opname, tuple(types), tuple((k, v.__class__, v) for k, v in op.attrs.items()))
        hit = _inferred.get(key)
    except TypeError:  # an unhashable attribute value
        return d.infer(types, op.attrs)
    if hit is None:
        hit = d.infer(types, op.attrs)
        if len(_inferred) >= _CACHE_LIMIT:
            _inferred.clear()
        _inferred[key] = hit
    return hit


def _defined_later(g: Graph, v: Value) -> bool:
    return any(v in op.results for op in g.ops)


def _verify_op(op: Operation, module: Module | None, diags: list[str], where: str) -> None:
    def here() -> str:  # only on failure: naming the op costs more than checking it
        return f"{where}: {op.where()}"

    d = lookup_opdef(op.opname)
    if d is None:
        diags.append(f"{here()}: unknown op '{op.opname}'")
        return
    lo, hi = d.operands
    n = len(op.operands)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        diags.append(f"{here()}: takes {want} operand(s), has {n}")
        return
    if len(op.regions) != d.num_regions:
        diags.append(f"{here()}: must have {d.num_regions} region(s), has {len(op.regions)}")
        return
    attrs_ok = True
    for k, spec in d.attrs.items():
        if k not in op.attrs:
            if spec.required:
                diags.append(f"{here()}: missing required attribute '{k}'")
                attrs_ok = False
            continue
        try:
            coerce(spec.kind, op.attrs[k], k)
        except AttrError as e:
            diags.append(f"{here()}: {e}")
            attrs_ok = False
    for k, v in op.attrs.items():
        if k in d.attrs:
            continue
        if not d.open_attrs:
            diags.append(f"{here()}: unknown attribute '{k}' (allowed: {', '.join(sorted(d.attrs)) or 'none'})")
        else:
            try:
                coerce(AttrKind.ANY, v, k)
            except AttrError as e:
                diags.append(f"{here()}: {e}")
    if not attrs_ok:  # inference would only trip over the same attributes
        return
    try:
        if op.opname == "weight":
            _verify_weight(op, module)
        elif d.num_regions == 0:
            expected = _infer(d, op)
            got = [r.type for r in op.results]
            if expected != got:
                diags.append(
                    f"{here()}: result type(s) ({', '.join(map(str, got))}) differ from inferred "
                    f"({', '.join(map(str, expected))})"
                )
        d.verify(op)
    except VerifyError as e:
        diags.extend(f"{where}: {x}" for x in e.diagnostics)
    except (TypeInferenceError, DimError, AttrError) as e:
        diags.append(f"{here()}: {e}")


def _verify_weight(op: Operation, module: Module | None) -> None:
    ref = op.attrs["ref"].name
    if module is None:
        return
    w = module.weights.get(ref)
    if w is None:
        raise VerifyError(op, f"refers to undeclared weight @{ref}")
    if len(op.results) != 1 or op.results[0].type != w.type:
        raise VerifyError(op, f"result type must be the weight's type {w.type}")
