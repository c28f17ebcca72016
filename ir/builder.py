"""Building graphs in code: ops are appended with their result types inferred."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import Graph, IRError, Module, Operation, Value
from .dims import Dim
from .opdef import get_opdef
from .types import TensorType
from .weights import ShapeOnly, Weight, WeightSource


class Builder:
    def __init__(self, graph: Graph, module: Module | None = None):
        self.graph = graph
        self.module = module

    def op(
        self,
        opname: str,
        operands: Sequence[Value] = (),
        attrs: dict[str, Any] | None = None,
        regions: Sequence[Graph] = (),
        loc: str | None = None,
        names: Sequence[str | None] | None = None,
        result_types: Sequence[TensorType] | None = None,
    ) -> Operation:
        opdef = get_opdef(opname)
        probe = Operation(opname, operands, [], attrs, loc=loc)  # normalizes attrs
        if result_types is None:
            if regions and opdef.num_regions:
                # A region op's results are what its (first) region returns.
                result_types = regions[0].output_types
            else:
                result_types = opdef.infer([v.type for v in operands], probe.attrs)
        if names is None or (len(names) == 1 and names[0] is None):
            names = [None] * len(result_types)
        op = Operation(opname, operands, result_types, probe.attrs, regions, loc, names)
        return self.graph.append(op)

    def emit(self, opname: str, *operands: Value, name: str | None = None, loc: str | None = None, **attrs: Any) -> Value:
        """Append a single-result op and return its result."""
        return self.op(opname, operands, attrs, loc=loc, names=[name]).result

    def constant(self, array: Any, name: str | None = None) -> Value:
        from .attributes import Dense

        return self.emit("constant", name=name, value=Dense(array))

    def weight(self, wname: str, type: TensorType, source: WeightSource | None = None, name: str | None = None) -> Value:
        if self.module is None:
            raise IRError("Builder.weight needs a module: Builder(graph, module)")
        if wname not in self.module.weights:
            self.module.add_weight(Weight(wname, type, source or ShapeOnly()))
        elif self.module.weights[wname].type != type:
            raise IRError(f"weight @{wname} is declared {self.module.weights[wname].type}, not {type}")
        return self.op("weight", (), {"ref": wname}, names=[name or wname],
                       result_types=[self.module.weights[wname].type]).result


def dims(*ds: Any) -> tuple[Dim, ...]:
    return tuple(Dim.of(d) for d in ds)
