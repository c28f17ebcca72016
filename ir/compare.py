"""Structural comparison of modules, for tests of passes and of the text format.

Two modules are the same when they have the same attributes, weights (names, types, where
the data lives) and graphs, op for op: names, operands (by what defines them, not by their
printed names), result types, attributes, regions, locations, and graph outputs. Value names
are compared only when asked, since the printer may rename values to keep them unique.
"""

from __future__ import annotations

import math
from typing import Any

from .attributes import Dense
from .core import Graph, Module, Operation, Value
from .dims import Dim
from .weights import InMemory, Weight


def module_diff(a: Module, b: Module, names: bool = False) -> list[str]:
    """The differences between ``a`` and ``b``, one line each; empty when they are the same."""
    out: list[str] = []
    _attrs_diff(a.attrs, b.attrs, "module", out)
    if list(a.weights) != list(b.weights):
        out.append(f"weights differ: {list(a.weights)} vs {list(b.weights)}")
    else:
        for name in a.weights:
            _weight_diff(a.weights[name], b.weights[name], out)
    if list(a.graphs) != list(b.graphs):
        out.append(f"graphs differ: {list(a.graphs)} vs {list(b.graphs)}")
    else:
        for name in a.graphs:
            out.extend(graph_diff(a.graphs[name], b.graphs[name], names))
    return out


def graph_diff(a: Graph, b: Graph, names: bool = False) -> list[str]:
    out: list[str] = []
    _graph_diff(a, b, names, f"@{a.name}", out, top=True)
    return out


def _graph_diff(a: Graph, b: Graph, names: bool, where: str, out: list[str], top: bool) -> None:
    # A region's name is not part of the IR (the text form does not write it).
    if top and a.name != b.name:
        out.append(f"{where}: graph name {a.name!r} vs {b.name!r}")
    if a.arg_types != b.arg_types:
        out.append(f"{where}: argument types {_types(a.arg_types)} vs {_types(b.arg_types)}")
        return
    vm: dict[Value, Value] = dict(zip(a.args, b.args))
    if names:
        for x, y in zip(a.args, b.args):
            if x.name != y.name:
                out.append(f"{where}: argument #{x.index} named {x.name!r} vs {y.name!r}")
    if len(a.ops) != len(b.ops):
        out.append(f"{where}: {len(a.ops)} ops vs {len(b.ops)}")
    for i, (x, y) in enumerate(zip(a.ops, b.ops)):
        _op_diff(x, y, vm, names, f"{where} op #{i} '{x.opname}'", out)
    if [vm.get(v) for v in a.outputs] != list(b.outputs):
        out.append(f"{where}: outputs differ")
    na = list(a.output_names) + [None] * (len(a.outputs) - len(a.output_names))
    nb = list(b.output_names) + [None] * (len(b.outputs) - len(b.output_names))
    if na != nb:
        out.append(f"{where}: output names {na} vs {nb}")


def _op_diff(x: Operation, y: Operation, vm: dict[Value, Value], names: bool, where: str, out: list[str]) -> None:
    if x.opname != y.opname:
        out.append(f"{where}: op {x.opname!r} vs {y.opname!r}")
        return
    if [vm.get(v) for v in x.operands] != list(y.operands):
        out.append(f"{where}: operands differ")
    if [r.type for r in x.results] != [r.type for r in y.results]:
        out.append(f"{where}: result types {_types([r.type for r in x.results])} vs {_types([r.type for r in y.results])}")
    if names and [r.name for r in x.results] != [r.name for r in y.results]:
        out.append(f"{where}: result names {[r.name for r in x.results]} vs {[r.name for r in y.results]}")
    vm.update(zip(x.results, y.results))
    _attrs_diff(x.attrs, y.attrs, where, out)
    if x.loc != y.loc:
        out.append(f"{where}: loc {x.loc!r} vs {y.loc!r}")
    if len(x.regions) != len(y.regions):
        out.append(f"{where}: {len(x.regions)} regions vs {len(y.regions)}")
    for k, (ra, rb) in enumerate(zip(x.regions, y.regions)):
        _graph_diff(ra, rb, names, f"{where} region #{k}", out, top=False)


def _attrs_diff(a: dict, b: dict, where: str, out: list[str]) -> None:
    if sorted(a) != sorted(b):
        out.append(f"{where}: attribute names {sorted(a)} vs {sorted(b)}")
        return
    for k in sorted(a):
        if not attr_equal(a[k], b[k]):
            out.append(f"{where}: attribute '{k}' = {a[k]!r} vs {b[k]!r}")


def attr_equal(a: Any, b: Any) -> bool:
    """Attribute values equal as the IR means them: floats by bits (nan equals nan, ``-0.0``
    does not equal ``0.0``), Dense by bits, a constant Dim equal to its int."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, Dim)) and isinstance(b, (int, Dim)):
        return Dim.of(a) == Dim.of(b)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(attr_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Dense) or isinstance(b, Dense):
        return a == b
    return type(a) is type(b) and a == b


def _weight_diff(a: Weight, b: Weight, out: list[str]) -> None:
    if a.type != b.type:
        out.append(f"weight @{a.name}: type {a.type} vs {b.type}")
    # Held arrays are not part of the structure (the text form cannot carry them).
    same_source = (isinstance(a.source, InMemory) and isinstance(b.source, InMemory)) or a.source == b.source
    if not same_source:
        out.append(f"weight @{a.name}: source {a.source.describe()} vs {b.source.describe()}")


def _types(ts) -> str:
    return "(" + ", ".join(map(str, ts)) + ")"
