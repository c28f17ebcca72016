"""The IR's structure: values, operations, graphs (regions) and modules.

A :class:`Module` holds named graphs and a weight table. A :class:`Graph` is an ordered
list of operations in SSA form with typed arguments and outputs. An operation may own
regions (nested graphs, isolated from above: they see only their own arguments), which is
how fused groups, sections and placed units are written in the same IR.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .attributes import AttrError, AttrKind, coerce, quote
from .errors import RduflowError
from .types import TensorType
from .weights import Weight


class IRError(RduflowError, ValueError):
    """Structural misuse of the IR API."""


class Value:
    """An SSA value: an operation result or a graph argument."""

    __slots__ = ("type", "name", "owner", "index")

    def __init__(self, type: TensorType, owner: Operation | Graph, index: int, name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name

    @property
    def defining_op(self) -> Operation | None:
        return self.owner if isinstance(self.owner, Operation) else None

    def __repr__(self) -> str:
        return f"<Value %{self.name or '?'}: {self.type}>"


class Operation:
    """One operation. ``opname`` selects its :class:`~rduflow.ir.opdef.OpDef` in the registry."""

    __slots__ = ("opname", "operands", "results", "attrs", "regions", "loc", "parent", "srcpos")

    def __init__(
        self,
        opname: str,
        operands: Sequence[Value],
        result_types: Sequence[TensorType],
        attrs: Mapping[str, Any] | None = None,
        regions: Sequence[Graph] = (),
        loc: str | None = None,
        result_names: Sequence[str | None] | None = None,
    ):
        self.opname = opname
        self.operands: list[Value] = list(operands)
        names = list(result_names) if result_names is not None else [None] * len(result_types)
        if len(names) != len(result_types):
            raise IRError(f"'{opname}' has {len(result_types)} result type(s) but {len(names)} result name(s)")
        self.results = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(result_types, names))]
        self.attrs = normalize_attrs(opname, attrs or {})
        self.regions: list[Graph] = []
        for r in regions:
            self.add_region(r)
        self.loc = loc
        self.parent: Graph | None = None
        self.srcpos: str | None = None  # "file:line:col" when parsed from text

    @property
    def opdef(self):
        from .opdef import get_opdef

        return get_opdef(self.opname)

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise IRError(f"'{self.opname}' has {len(self.results)} results, not one")
        return self.results[0]

    def add_region(self, graph: Graph) -> None:
        graph.parent_op = self
        self.regions.append(graph)

    def where(self) -> str:
        """How diagnostics name this op: its location and result names."""
        res = ", ".join(f"%{r.name}" for r in self.results if r.name) or "(no results)"
        parts = [f"'{self.opname}' defining {res}"]
        if self.loc:
            parts.append(f"loc({quote(self.loc)})")
        if self.srcpos:
            parts.append(f"at {self.srcpos}")
        return " ".join(parts)

    def clone(self, value_map: dict[Value, Value] | None = None) -> Operation:
        """A copy with new results (and cloned regions); operands are mapped through
        ``value_map`` (kept as they are if absent), which gains this op's results."""
        vm = {} if value_map is None else value_map
        op = Operation(self.opname, [vm.get(v, v) for v in self.operands], [r.type for r in self.results],
                       None, [r.clone(vm) for r in self.regions], self.loc, [r.name for r in self.results])
        op.attrs = dict(self.attrs)  # already normalized; values are immutable
        op.srcpos = self.srcpos
        vm.update(zip(self.results, op.results))
        return op

    def __repr__(self) -> str:
        return f"<Operation {self.opname} -> {[str(r.type) for r in self.results]}>"


def normalize_attrs(opname: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce attributes to their declared kinds; unknown ops keep what they were given."""
    from .opdef import lookup_opdef

    opdef = lookup_opdef(opname)
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if not isinstance(k, str):
            raise AttrError(f"'{opname}': attribute names are strings, not {k!r}")
        spec = opdef.attrs.get(k) if opdef else None
        if spec is None:
            out[k] = coerce_any(v, k)
        else:
            out[k] = coerce(spec.kind, v, k)
    if opdef:
        for k, spec in opdef.attrs.items():
            if k not in out and not spec.required:
                out[k] = spec.default
    return dict(sorted(out.items()))


def coerce_any(value: Any, name: str) -> Any:
    return coerce(AttrKind.ANY, value, name)


class Graph:
    """A list of operations in SSA order, with typed arguments and outputs."""

    def __init__(self, name: str = "main", arg_types: Sequence[TensorType] = (), arg_names: Sequence[str | None] | None = None):
        self.name = name
        names = list(arg_names) if arg_names is not None else [None] * len(arg_types)
        if len(names) != len(arg_types):
            raise IRError(f"graph @{name} has {len(arg_types)} argument type(s) but {len(names)} name(s)")
        self.args = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(arg_types, names))]
        self.ops: list[Operation] = []
        self.outputs: list[Value] = []
        self.output_names: list[str | None] = []
        self.parent_op: Operation | None = None

    def add_arg(self, type: TensorType, name: str | None = None) -> Value:
        v = Value(type, self, len(self.args), name)
        self.args.append(v)
        return v

    def append(self, op: Operation) -> Operation:
        op.parent = self
        self.ops.append(op)
        return op

    def insert(self, index: int, op: Operation) -> Operation:
        op.parent = self
        self.ops.insert(index, op)
        return op

    def set_outputs(self, values: Sequence[Value], names: Sequence[str | None] | None = None) -> None:
        if names is not None and len(names) != len(values):
            raise IRError(f"graph @{self.name}: {len(values)} output(s) but {len(names)} output name(s)")
        self.outputs = list(values)
        self.output_names = list(names) if names is not None else [None] * len(values)

    def walk(self) -> Iterator[Operation]:
        """Every op, nested regions included, in pre-order."""
        for op in self.ops:
            yield op
            for r in op.regions:
                yield from r.walk()

    def users(self) -> dict[Value, list[Operation]]:
        """Map each value to the ops (of this graph, not nested) that use it."""
        uses: dict[Value, list[Operation]] = {}
        for op in self.ops:
            for v in op.operands:
                uses.setdefault(v, []).append(op)
        return uses

    def replace_all_uses(self, old: Value, new: Value) -> None:
        for op in self.ops:
            op.operands = [new if v is old else v for v in op.operands]
        self.outputs = [new if v is old else v for v in self.outputs]

    def erase(self, op: Operation) -> None:
        self.ops.remove(op)
        op.parent = None

    @property
    def arg_types(self) -> list[TensorType]:
        return [a.type for a in self.args]

    @property
    def output_types(self) -> list[TensorType]:
        return [v.type for v in self.outputs]

    @property
    def symbols(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for a in self.args:
            out |= a.type.symbols
        return out

    def clone(self, value_map: dict[Value, Value] | None = None) -> Graph:
        """A deep copy of the structure (ops, regions, names, locations); attribute values
        are immutable and shared. ``value_map``, if given, receives old value -> new value."""
        vm = {} if value_map is None else value_map
        g = Graph(self.name, self.arg_types, [a.name for a in self.args])
        vm.update(zip(self.args, g.args))
        for op in self.ops:
            g.append(op.clone(vm))
        g.set_outputs([vm.get(v, v) for v in self.outputs], list(self.output_names))
        return g

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.ops)} ops>"


class Module:
    """Named graphs plus the weights their ``weight`` ops refer to."""

    def __init__(self, graphs: Iterable[Graph] = (), weights: Iterable[Weight] = (), base_dir: Path | None = None):
        self.graphs: dict[str, Graph] = {}
        self.weights: dict[str, Weight] = {}
        self.attrs: dict[str, Any] = {}
        self.base_dir = base_dir  # where relative weight paths resolve; not printed
        for g in graphs:
            self.add_graph(g)
        for w in weights:
            self.add_weight(w)

    def add_graph(self, g: Graph) -> Graph:
        if g.name in self.graphs:
            raise IRError(f"module already has a graph @{g.name}")
        self.graphs[g.name] = g
        return g

    def add_weight(self, w: Weight) -> Weight:
        if w.name in self.weights:
            raise IRError(f"module already has a weight @{w.name}")
        self.weights[w.name] = w
        return w

    @property
    def main(self) -> Graph:
        if "main" in self.graphs:
            return self.graphs["main"]
        if len(self.graphs) == 1:
            return next(iter(self.graphs.values()))
        raise IRError("module has no @main graph")

    def clone(self) -> Module:
        """A deep copy of the graphs; weight records are copied but their data (files,
        arrays) is shared, never duplicated."""
        m = Module(base_dir=self.base_dir)
        m.attrs = dict(self.attrs)
        for w in self.weights.values():
            m.add_weight(Weight(w.name, w.type, w.source))
        for g in self.graphs.values():
            m.add_graph(g.clone())
        return m

    @property
    def symbols(self) -> frozenset[str]:
        """Every dimension symbol in the module's types, attributes and weights."""
        from .specialize import module_symbols

        return module_symbols(self)

    def __str__(self) -> str:
        from .printer import print_module

        return print_module(self)
