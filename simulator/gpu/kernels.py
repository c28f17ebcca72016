"""Forming kernels from an unfused graph, as a GPU inference stack would launch them.

The rules (docs/gpu-model.md, "Kernels") mirror what vLLM, TensorRT-LLM or torch.compile
produce for a decoder:

* **Free values.** Constants, weights and anything computed only from shapes (positions,
  causal masks, rotary tables) launch nothing: kernels generate them from indices, as
  Inductor does with iota-based masks. Ops on weights alone (dequantization) run inside
  the kernel that reads the weight, so the weight is read as stored (int4: half a byte).
* **GEMMs.** A matmul with a weight operand is a GEMM kernel. GEMMs reading the same
  activation merge into one (fused QKV, gate/up). Elementwise ops on the GEMM's own results,
  with other operands only broadcast ones (bias, rotary tables), run in its epilogue; so
  does appending new keys and values to the KV cache. Layout changes and casts that only
  feed a matmul run in its operand loads.
* **Attention.** An activation-by-activation matmul followed by scaling, masking and a
  softmax and a second matmul is one fused attention kernel (FlashAttention): the score
  matrix never reaches memory.
* **Pointwise.** Everything else (residual adds, norms, activations) fuses into chains, as
  Inductor fuses pointwise ops and reductions.

A kernel can only grow while nothing outside it has read its results ("sealed" otherwise),
which keeps kernels in a valid order without any cycle check. Kernels list their ops; the
costs come from the IR (``rduflow.simulator.gpu.program``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rduflow.compiler.backend.shard_rules import static_values
from rduflow.ir import Graph, Module, Operation, Trait, Value

from .errors import GpuModelError

GEMM, ATTENTION, BMM, POINTWISE = "gemm", "attention", "bmm", "pointwise"
KINDS = (GEMM, ATTENTION, BMM, POINTWISE)
# Element-type conversions a GEMM does while loading its operands (the model's policy: a
# dequantization or a cast, not a quantization).
LOAD_CASTS = frozenset({"cast", "dequantize_linear"})

# Value classes.
STATIC, WEIGHT, ACT = "static", "weight", "act"


@dataclass(eq=False)
class Kernel:
    index: int
    kind: str
    ops: list[Operation] = field(default_factory=list)
    sealed: bool = False
    # Attention progress: "scores" (first product), "probs" (softmax taken), "done".
    stage: str = ""
    # For a GEMM: the activation its products read (GEMMs on the same one merge).
    source: Value | None = None

    @property
    def name(self) -> str:
        anchor = next((op for op in self.ops if op.opdef.kind == "matmul"), None)
        anchor = anchor or next((op for op in self.ops if not is_load_conversion(op)), self.ops[0])
        return anchor.loc or (anchor.results[0].name if anchor.results and anchor.results[0].name else anchor.opname)


@dataclass
class Formation:
    """The kernels of a graph, and what the costing needs to know about its values."""

    graph: Graph
    kernels: list[Kernel]
    value_class: dict[Value, str]
    kernel_of: dict[Operation, Kernel]  # the kernel an op was placed in (not prologue copies)
    appends: frozenset[Operation]  # concats that append to a graph-input cache in place
    aliases: frozenset[Operation]  # views of graph inputs, read in place by their users
    weight_gathers: frozenset[Operation]  # gathers of weight rows feeding a matmul (MoE experts)
    gemms: frozenset[Operation]  # matmuls with a weight operand


def form_kernels(module: Module) -> Formation:
    graph = module.main
    for op in graph.ops:
        if op.regions:
            raise GpuModelError(f"{op.where()}: the GPU model takes an unfused graph (imported or built), "
                                "not one with fused groups or sections")
    return _Former(graph).run()


class _Former:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.users = graph.users()
        self.outputs = set(graph.outputs)
        self.args = set(graph.args)
        self.cls: dict[Value, str] = {}
        self.prologue: set[Operation] = set()
        self.weight_gathers: set[Operation] = set()
        self.kernels: list[Kernel] = []
        self.kernel_of: dict[Operation, Kernel] = {}
        self.members: list[set[Operation]] = []
        self.appends: set[Operation] = set()
        self.aliases: set[Operation] = set()
        self.gemms: set[Operation] = set()

    def run(self) -> Formation:
        self.classify()
        self.mark_prologues()
        for op in self.graph.ops:
            if self.op_class(op) != ACT or op in self.prologue:
                continue
            if op.opdef.kind == "matmul":
                self.place_matmul(op)
            else:
                self.place_other(op)
        return Formation(graph=self.graph, kernels=self.kernels, value_class=self.cls, kernel_of=self.kernel_of,
                         appends=frozenset(self.appends), aliases=frozenset(self.aliases),
                         weight_gathers=frozenset(self.weight_gathers), gemms=frozenset(self.gemms))

    # -- value classes ---------------------------------------------------------------------
    def classify(self) -> None:
        """Static values as the ``shard`` pass finds them: from weights (run inside the kernel
        reading them) or from shapes and constants alone (generated where read)."""
        static = static_values(self.graph)
        for a in self.graph.args:
            self.cls[a] = ACT
        for op in self.graph.ops:
            for r in op.results:
                self.cls[r] = ACT if r not in static else WEIGHT if static[r] else STATIC

    def op_class(self, op: Operation) -> str:
        return self.cls[op.results[0]] if op.results else ACT

    def mark_prologues(self) -> None:
        """Casts, dequantizations and layout changes whose every use is a matmul operand
        (directly or through more of them) run in that matmul's operand loads; so do
        gathers of weight rows (a grouped GEMM reads each selected expert's weights)."""
        for op in reversed(self.graph.ops):
            if self.op_class(op) != ACT or any(r in self.outputs for r in op.results):
                continue
            weight_gather = op.opname == "gather" and self.cls[op.operands[0]] == WEIGHT
            if not is_load_conversion(op) and not weight_gather:
                continue
            uses = [u for r in op.results for u in self.users.get(r, [])]
            if uses and all(u.opdef.kind == "matmul" or u in self.prologue for u in uses):
                self.prologue.add(op)
                if weight_gather:
                    self.weight_gathers.add(op)

    # -- placing ops -----------------------------------------------------------------------
    def producer_kernel(self, v: Value) -> Kernel | None:
        op = v.defining_op
        return self.kernel_of.get(op) if op is not None else None

    def new_kernel(self, kind: str) -> Kernel:
        k = Kernel(len(self.kernels), kind)
        self.kernels.append(k)
        self.members.append(set())
        return k

    def add(self, k: Kernel, op: Operation, primary: bool = True) -> None:
        if op in self.members[k.index]:
            return
        self.members[k.index].add(op)
        k.ops.append(op)
        if primary:
            self.kernel_of[op] = k
        for v in op.operands:
            src = v.defining_op
            if self.cls[v] == WEIGHT and src is not None and src.opname != "weight":
                self.add(k, src, primary=False)  # dequantization and the like, redone per reader
            pk = self.producer_kernel(v)
            if pk is not None and pk is not k:
                pk.sealed = True

    def chain(self, v: Value) -> tuple[list[Operation], Value]:
        """The prologue ops between ``v`` and the value they start from (the chain's root)."""
        ops: list[Operation] = []
        while True:
            d = v.defining_op
            if d is None or d not in self.prologue:
                return ops, v
            ops.append(d)
            if d in self.weight_gathers:
                return ops, d.operands[0]  # the expert table
            v = d.operands[0]

    def place_matmul(self, op: Operation) -> None:
        chains = [self.chain(v) for v in op.operands]
        weighted = [root for _, root in chains if self.cls[root] == WEIGHT]
        acts = [root for _, root in chains if self.cls[root] == ACT]
        if weighted:
            self.gemms.add(op)
            source = acts[0] if acts else None
            target = next((k for k in reversed(self.kernels)
                           if k.kind == GEMM and not k.sealed and source is not None and k.source is source), None)
            if target is None:
                target = self.new_kernel(GEMM)
                target.source = source
        else:
            target = None
            for _, root in chains:
                k = self.producer_kernel(root)
                if k is not None and k.kind == ATTENTION and k.stage == "probs" and not k.sealed:
                    target = k
            if target is None:
                target = self.new_kernel(BMM)
                target.stage = "scores"
            else:
                target.stage = "done"
        for ops, _ in chains:
            for p in reversed(ops):
                self.add(target, p, primary=False)
        self.add(target, op)

    def place_other(self, op: Operation) -> None:
        kernels = [self.producer_kernel(v) for v in op.operands]
        if op.opdef.has_trait(Trait.VIEW) and all(k is None for k in kernels):
            self.aliases.add(op)  # a view of a graph input: its readers read the input in place
            return
        if self.is_append(op):
            self.appends.add(op)
        candidates = sorted({k for k in kernels if k is not None and not k.sealed}, key=lambda k: -k.index)
        target = next((k for k in candidates if self.accepts(k, op)), None)
        if target is None:
            target = self.new_kernel(POINTWISE)
        elif target.kind == BMM and op.opname == "softmax":
            target.kind, target.stage = ATTENTION, "probs"
        self.add(target, op)

    def is_append(self, op: Operation) -> bool:
        return op.opname == "concat" and any(self.is_input(v) for v in op.operands)

    def is_input(self, v: Value) -> bool:
        d = v.defining_op
        return v in self.args or (d is not None and d in self.aliases)

    # -- fusion rules --------------------------------------------------------------------------
    def accepts(self, k: Kernel, op: Operation) -> bool:
        if k.kind == POINTWISE:
            return True
        if op.opdef.has_trait(Trait.VIEW):
            return True
        if k.kind in (BMM, ATTENTION) and k.stage != "done":
            if op.opname == "softmax":
                return k.kind == BMM and self.internal_or_broadcast(k, op)
            return op.opdef.kind == "elementwise" and self.internal_or_broadcast(k, op)
        # GEMM epilogues, and what follows a finished attention kernel.
        if op in self.appends:
            return all(self.is_input(v) or self.inside(k, v) or self.cls[v] == STATIC for v in op.operands)
        if op.opname == "concat":
            return all(self.inside(k, v) or self.cls[v] == STATIC for v in op.operands)
        return op.opdef.kind == "elementwise" and self.internal_or_broadcast(k, op)

    def inside(self, k: Kernel, v: Value) -> bool:
        d = v.defining_op
        return d is not None and d in self.members[k.index]

    def internal_or_broadcast(self, k: Kernel, op: Operation) -> bool:
        """Every operand comes from the kernel itself, or is broadcast against the result
        (a bias, a scale, a rotary table): what an epilogue can read alongside its tile."""
        out = op.results[0].type
        if not any(self.inside(k, v) for v in op.operands):
            return False
        return all(self.inside(k, v) or self.cls[v] == STATIC or is_broadcast(v.type, out) for v in op.operands)


def is_load_conversion(op: Operation) -> bool:
    """A layout change or cast that a matmul can apply while loading the operand."""
    return op.opdef.has_trait(Trait.VIEW) or op.opname in LOAD_CASTS


def is_broadcast(t, out) -> bool:
    """Whether a ``t`` operand is broadcast against an ``out`` result (fewer elements along some axis)."""
    if t.rank < out.rank:
        return True
    return any(d == 1 and o != 1 for d, o in zip(t.shape[t.rank - out.rank:], out.shape))
