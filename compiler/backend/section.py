"""``section``: cut the fused graph into sections that fit one socket, and assign its tensors to memory tiers.

Each group becomes a ``section`` (the unit of execution), if it fits: its compute units
need no more PCUs than the chip has (one each, more for units fed from memory) and its
buffers no more PMUs (:func:`.allocate.design_needs` on the section's design). A group
that does not fit is cut at the largest prefix of its ops that does, and the rest is cut
again, so a section holds as much of the pipeline as the chip can. Tensors that cross a
section boundary go through memory (:mod:`.tiers` decides HBM or DDR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext
from rduflow.ir import Graph, Module, Operation, Value
from rduflow.ir.signature import op_signature
from rduflow.compiler.target import RduArch

from .allocate import design_needs
from .design import design_section, transfer_agcus
from .errors import CompileError
from .fuse import Grouper
from .tiers import assign_tiers
from .shard_rules import static_values


@dataclass(frozen=True)
class Sectioning(ModulePass):
    """Cut groups into sections that fit one socket's PCUs and PMUs; tensors between them go to HBM/DDR."""

    name: ClassVar[str] = "section"
    needs_target: ClassVar[bool] = True

    def apply(self, module: Module, ctx: PassContext) -> None:
        arch = ctx.target_for(self)
        g = module.main
        if not any(op.opname == "section" for op in g.ops):
            _pin_output_names(g)
            fits: dict = {}
            vm: dict[Value, Value] = {}
            ops = list(g.ops)
            g.ops = []
            for op in ops:
                if op.opname != "group":
                    raise CompileError(f"{op.where()}: sectioning expects fused groups at the top level "
                                       "(run the fuse pass first)")
                parts, outs = _fit(op, arch, fits)
                for part in parts:
                    sec = _as_section(part, [vm.get(v, v) for v in part.operands])
                    g.append(sec)
                    vm.update(zip(part.results, sec.results))
                vm.update((r, vm[o]) for r, o in zip(op.results, outs))
            g.set_outputs([vm.get(v, v) for v in g.outputs], list(g.output_names))
            _unique_result_names(g)
        assign_tiers(module, arch)


def _as_section(group: Operation, operands: list[Value]) -> Operation:
    body = Graph("region", [v.type for v in operands], [v.name for v in operands])
    inner = Operation("group", body.args, [r.type for r in group.results], dict(group.attrs),
                      [group.regions[0]], group.loc, [r.name for r in group.results])
    body.append(inner)
    body.set_outputs(inner.results)
    return Operation("section", operands, [r.type for r in group.results], {"name": group.attrs.get("name", "")},
                     [body], group.loc, [r.name for r in group.results])


def _fit(group: Operation, arch: RduArch, fits: dict) -> tuple[list[Operation], list[Value]]:
    """``group`` as groups that each fit a socket, and the values that stand for its results."""
    if _fits(group, arch, fits):
        return [group], list(group.results)
    region = group.regions[0]
    local = set(static_values(region))
    main = [op for op in region.ops if not all(r in local for r in op.results)]
    lo, hi = 0, len(main) - 1  # the longest prefix main[:lo] that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(_regroup(group, main, mid)[0][0], arch, fits):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        one = _regroup(group, main, 1)[0][0] if len(main) > 1 else group
        pcus, pmus = design_needs(design_section("", one.regions[0], transfer_agcus(arch)), arch)
        raise CompileError(f"{main[0].where()} does not fit one socket even alone: it needs {pcus} PCUs and "
                           f"{pmus} PMUs ({arch.name} has {arch.pcu.count} and {arch.pmu.count}); use more sockets, "
                           "or a smaller batch or sequence")
    groups, outs = _regroup(group, main, lo)
    result, subst = [groups[0]], {}
    for rest in groups[1:]:
        rest.operands = [subst.get(v, v) for v in rest.operands]
        parts, rest_outs = _fit(rest, arch, fits)
        result += parts
        subst.update(zip(rest.results, rest_outs))
    return result, [subst.get(v, v) for v in outs]


def _fits(group: Operation, arch: RduArch, fits: dict) -> bool:
    key = op_signature(group)
    if key not in fits:
        pcus, pmus = design_needs(design_section("", group.regions[0], transfer_agcus(arch)), arch)
        fits[key] = pcus <= arch.pcu.count and pmus <= arch.pmu.count
    return fits[key]


def _regroup(group: Operation, main: list[Operation], cut: int) -> tuple[list[Operation], list[Value]]:
    """``group`` as consecutive groups, its ops before ``main[cut]`` and from there on; and the
    values (results of those) that stand for the group's results."""
    region = group.regions[0].clone()
    index = {op: i for i, op in enumerate(group.regions[0].ops)}
    parts = [[region.ops[index[op]] for op in main[:cut]], [region.ops[index[op]] for op in main[cut:]]]
    Grouper(region, set(static_values(region)), nest_attention=False).build([(p, "block") for p in parts])
    name = group.attrs.get("name", "")
    vm = dict(zip(region.args, group.operands))
    for i, sub in enumerate(region.ops):
        sub.attrs = {**sub.attrs, "fusion": group.attrs.get("fusion", "block"), "name": f"{name}/{i}"}
        sub.operands = [vm.get(v, v) for v in sub.operands]
        sub.parent = None
    return list(region.ops), [vm.get(v, v) for v in region.outputs]


def _pin_output_names(g: Graph) -> None:
    """Outputs keep the names callers know them by when their values are renamed."""
    names = list(g.output_names) or [None] * len(g.outputs)
    g.set_outputs(g.outputs, [n or v.name or str(i) for i, (n, v) in enumerate(zip(names, g.outputs))])


def _unique_result_names(g: Graph) -> None:
    """Memory tensors are named after the values they hold: make section results' names unique."""
    taken: set[str] = {a.name for a in g.args if a.name}
    for op in g.ops:
        for r in op.results:
            base = r.name or "t"
            name, k = base, 1
            while name in taken:
                name, k = f"{base}#{k}", k + 1
            r.name = name
            taken.add(name)
