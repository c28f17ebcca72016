"""Structural and type verification, run after every pass.

Checks: every op is registered with the right arity, regions and attributes; operands are
defined before use in the same graph (regions are isolated from above, so a region sees only
its own arguments); each result type equals what the op's inference computes; weight
references resolve; op-specific hooks pass. Diagnostics name the op and where it came from.
"""

from __future__ import annotations

from .attributes import AttrError, coerce
from .core import Graph, Module, Operation, Value
from .dims import DimError
from .errors import RduflowError
from .opdef import TypeInferenceError, lookup_opdef


class VerifyError(RduflowError, ValueError):
    """One or more diagnostics; ``str()`` lists them all, one per line."""

    def __init__(self, op: Operation | None, message: str, diagnostics: list[str] | None = None):
        self.op = op
        self.diagnostics = diagnostics or [f"{op.where()}: {message}" if op is not None else message]
        super().__init__("\n".join(self.diagnostics))


def verify_module(module: Module) -> None:
    diags: list[str] = []
    for g in module.graphs.values():
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
    for a in g.args:
        if a.owner is not g:
            diags.append(f"{where}: argument %{a.name} belongs to another graph")
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


def _defined_later(g: Graph, v: Value) -> bool:
    return any(v in op.results for op in g.ops)


def _verify_op(op: Operation, module: Module | None, diags: list[str], where: str) -> None:
    d = lookup_opdef(op.opname)
    here = f"{where}: {op.where()}"
    if d is None:
        diags.append(f"{here}: unknown op '{op.opname}'")
        return
    lo, hi = d.operands
    n = len(op.operands)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        diags.append(f"{here}: takes {want} operand(s), has {n}")
        return
    if len(op.regions) != d.num_regions:
        diags.append(f"{here}: must have {d.num_regions} region(s), has {len(op.regions)}")
        return
    for k, spec in d.attrs.items():
        if k not in op.attrs:
            if spec.required:
                diags.append(f"{here}: missing required attribute '{k}'")
            continue
        try:
            coerce(spec.kind, op.attrs[k], k)
        except AttrError as e:
            diags.append(f"{here}: {e}")
    if not d.open_attrs:
        for k in op.attrs:
            if k not in d.attrs:
                diags.append(f"{here}: unknown attribute '{k}' (allowed: {', '.join(sorted(d.attrs)) or 'none'})")
    if any(k not in op.attrs for k, s in d.attrs.items() if s.required):
        return
    try:
        if op.opname == "weight":
            _verify_weight(op, module)
        elif d.num_regions == 0:
            expected = d.infer([v.type for v in op.operands], op.attrs)
            got = [r.type for r in op.results]
            if expected != got:
                diags.append(
                    f"{here}: result type(s) ({', '.join(map(str, got))}) differ from inferred "
                    f"({', '.join(map(str, expected))})"
                )
        d.verify(op)
    except VerifyError as e:
        diags.extend(f"{where}: {x}" for x in e.diagnostics)
    except (TypeInferenceError, DimError, AttrError) as e:
        diags.append(f"{here}: {e}")


def _verify_weight(op: Operation, module: Module | None) -> None:
    ref = op.attrs["ref"].name
    if module is None:
        return
    w = module.weights.get(ref)
    if w is None:
        raise VerifyError(op, f"refers to undeclared weight @{ref}")
    if len(op.results) != 1 or op.results[0].type != w.type:
        raise VerifyError(op, f"result type must be the weight's type {w.type}")
