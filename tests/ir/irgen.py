"""Hypothesis strategies that generate random *valid* IR modules.

Graphs are built with the Builder, so every result type comes from the ops' own inference;
each generator below picks operands and attributes that the op accepts. Modules carry every
feature of the text form: symbolic shapes, attributes of every kind (free-form annotations on
group/section ops and on the module), nested regions, constants of every element type with
arbitrary bit patterns, weights of every source kind, odd names, output names and locations.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from rduflow.ir import (
    Builder, Dense, Dim, DType, ExternalFile, Graph, InMemory, Module, NpzEntry, OnnxInitializer,
    ShapeOnly, SymbolRef, TensorType, Value,
)
from rduflow.ir.ops.common import broadcast
from rduflow.ir.opdef import TypeInferenceError
from rduflow.ir.printer import MAX_INLINE_ELEMENTS

ARG_DIMS = [Dim.of(d) for d in (1, 2, 3, 4, "batch", "seq", "past", "past+seq", "batch*seq", "2*seq")]
FLOATS = [DType.f32, DType.f16, DType.bf16, DType.f8e4m3, DType.f8e5m2, DType.f64]
NUMERIC = FLOATS + [DType.i64, DType.i32, DType.i8, DType.i4, DType.u8]
ALL_DTYPES = list(DType)

# Names that stress quoting and uniquing: keywords, punctuation, digits, repeats, the empty name.
odd_names = st.sampled_from(["x", "x", "h.0", "a/b-c", "$t", "0", "12", "nan", "weight", "a b", "é", ""])
value_names = st.none() | odd_names | st.text(max_size=4)
symbol_names = odd_names | st.text(max_size=5) | st.sampled_from(["main", "decode", "true", "@x"])
texts = st.text(max_size=8) | st.sampled_from(['"', "\\", "\n", 'a"b\\c\nd', "\x00\x7f\u2028", "\ud800"])

dims = st.builds(lambda a, b, c, k: a * b + c * k, st.sampled_from(ARG_DIMS), st.sampled_from(ARG_DIMS),
                 st.sampled_from(ARG_DIMS), st.integers(-3, 3))
special_floats = st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-300, 5e-324, 1e300, 0.1, -2.5])
floats = st.floats(allow_nan=True, allow_infinity=True) | special_floats


def dense_values(dtype: DType, shape: tuple[int, ...]) -> st.SearchStrategy[Dense]:
    n = int(np.prod(shape, dtype=np.int64))
    npdt = dtype.numpy
    if dtype.is_float:
        # Any bit pattern at all: NaNs with payloads and signs, infinities, subnormals.
        width = 8 * npdt.itemsize
        return st.lists(st.integers(0, 2**width - 1), min_size=n, max_size=n).map(
            lambda bits: Dense(np.array(bits, dtype=f"<u{npdt.itemsize}").view(npdt).reshape(shape)))
    if dtype is DType.bool:
        return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: Dense(np.array(v, dtype=bool).reshape(shape)))
    if dtype is DType.string:
        return st.lists(texts, min_size=n, max_size=n).map(
            lambda v: Dense(np.array(v + [None], dtype=object)[:-1].reshape(shape)))
    import ml_dtypes

    info = ml_dtypes.iinfo(npdt)
    wide = np.uint64 if dtype is DType.u64 else np.int64
    return st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n).map(
        lambda v: Dense(np.array(v, dtype=wide).astype(npdt).reshape(shape)))


@st.composite
def denses(draw, max_elements: int = 6) -> Dense:
    dtype = draw(st.sampled_from(ALL_DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    if int(np.prod(shape)) > max_elements:
        shape = (max_elements,)
    return draw(dense_values(dtype, shape))


# Free-form attribute values (annotations): every kind, nested lists included.
any_attr = st.recursive(
    st.integers(-2**70, 2**70) | floats | texts | st.booleans() | st.sampled_from(ALL_DTYPES) | dims
    | st.builds(SymbolRef, symbol_names) | denses(),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=8,
)
attr_dicts = st.dictionaries(symbol_names | st.sampled_from(["kind", "loc", "dense", "x-y"]), any_attr, max_size=4)


def _broadcastable(a: TensorType, b: TensorType) -> bool:
    try:
        broadcast(a.shape, b.shape)
    except TypeInferenceError:
        return False
    return True


class _Gen:
    """Appends random valid ops to one graph."""

    def __init__(self, draw, module: Module, graph: Graph, depth: int):
        self.draw, self.m, self.g, self.depth = draw, module, graph, depth
        self.b = Builder(graph, module)
        self.vals: list[Value] = list(graph.args)

    def pick(self, pred=lambda v: True) -> Value | None:
        cands = [v for v in self.vals if pred(v)]
        return self.draw(st.sampled_from(cands)) if cands else None

    def emit(self, opname: str, *operands: Value, **attrs) -> Value:
        v = self.b.emit(opname, *operands, **attrs)
        self.vals.append(v)
        return v

    def axis(self, rank: int) -> int:
        return self.draw(st.integers(-rank, rank - 1))

    def weight(self, type: TensorType) -> Value:
        src = self.draw(st.sampled_from(["shape", "memory", "external", "onnx", "npz"]))
        path = self.draw(st.sampled_from(["w.bin", "dir/model data.bin", 'q"uote\\.bin', "/abs/π.onnx"]))
        source = {
            "shape": ShapeOnly(),
            "memory": InMemory(None),
            "external": ExternalFile(path, self.draw(st.integers(0, 2**40)), self.draw(st.none() | st.integers(0, 2**40))),
            "onnx": OnnxInitializer(path, self.draw(texts)),
            "npz": NpzEntry(path, self.draw(texts)),
        }[src]
        name = self.draw(symbol_names)
        while name in self.m.weights:
            name += "'"
        v = self.b.weight(name, type, source, name=self.draw(value_names))
        self.vals.append(v)
        return v

    # -- one generator per op family ---------------------------------------------------------
    def unary(self):
        x = self.pick()
        if x is None:
            return
        if x.type.dtype.is_float and self.draw(st.booleans()):
            op = self.draw(st.sampled_from(["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "gelu",
                                            "erf", "sin", "floor", "isnan", "isinf"]))
            attrs = {"approximate": self.draw(st.sampled_from(["none", "tanh"]))} if op == "gelu" else {}
            self.emit(op, x, **attrs)
        else:
            self.emit(self.draw(st.sampled_from(["neg", "abs", "sign", "relu", "identity", "not"])), x)

    def binary(self):
        a = self.pick()
        if a is None:
            return
        op = self.draw(st.sampled_from(["add", "sub", "mul", "div", "max", "min", "mod", "equal", "less",
                                        "greater_equal", "and", "xor", "bitwise_or", "pow"]))
        if op == "pow":
            b = self.pick(lambda v: _broadcastable(v.type, a.type))
        else:
            b = self.pick(lambda v: v.type.dtype == a.type.dtype and _broadcastable(v.type, a.type))
        attrs = {"fmod": self.draw(st.booleans())} if op == "mod" else {}
        self.emit(op, a, b, **attrs)

    def cast(self):
        x = self.pick()
        if x is not None:
            self.emit("cast", x, to=self.draw(st.sampled_from(ALL_DTYPES)))

    def clip(self):
        x = self.pick()
        if x is not None:
            self.emit("clip", x, min=self.draw(floats), max=self.draw(floats))

    def where(self):
        x = self.pick()
        if x is not None:
            cond = self.emit("less", x, x)
            self.emit("where", cond, x, x)

    def reshape(self):
        x = self.pick(lambda v: v.type.rank <= 3)
        if x is None:
            return
        shape = list(x.type.shape)
        how = self.draw(st.sampled_from(["flatten", "merge", "unsqueeze", "split"]))
        if how == "flatten":
            shape = [x.type.numel]
        elif how == "merge" and len(shape) >= 2:
            i = self.draw(st.integers(0, len(shape) - 2))
            shape[i:i + 2] = [shape[i] * shape[i + 1]]
        elif how == "split" and any(d.maybe_int() in (2, 4) for d in shape):
            i = next(k for k, d in enumerate(shape) if d.maybe_int() in (2, 4))
            shape[i:i + 1] = [Dim.const(2), shape[i] // 2]
        else:
            shape.insert(self.draw(st.integers(0, len(shape))), Dim.const(1))
        self.emit("reshape", x, shape=shape)

    def transpose(self):
        x = self.pick()
        if x is not None:
            self.emit("transpose", x, perm=self.draw(st.permutations(range(x.type.rank))))

    def concat(self):
        x = self.pick(lambda v: v.type.rank >= 1)
        if x is not None:
            n = self.draw(st.integers(1, 3))
            self.emit("concat", *[x] * n, axis=self.axis(x.type.rank))

    def slice(self):
        x = self.pick(lambda v: v.type.rank >= 1)
        if x is None:
            return
        ax = self.axis(x.type.rank)
        d = x.type.shape[ax]
        if d == Dim.of("past+seq") and self.draw(st.booleans()):
            start, end, step = Dim.of("past"), d, 1
        elif d.maybe_int() is not None:
            n = d.maybe_int()
            start = self.draw(st.integers(-n - 1, n + 1))
            end = self.draw(st.integers(-n - 1, n + 1) | st.just(2**62))
            step = self.draw(st.sampled_from([1, 2, -1]))
            if step == 1 and (slice(start, end).indices(n)[1] < slice(start, end).indices(n)[0]):
                start, end = 0, n
        else:
            start, end, step = 0, d, 1
        self.emit("slice", x, axes=[ax], starts=[start], ends=[end], steps=[step] if step != 1 else [])

    def split(self):
        x = self.pick(lambda v: v.type.rank >= 1)
        if x is None:
            return
        ax = self.axis(x.type.rank)
        d = x.type.shape[ax]
        n = d.maybe_int()
        if n is not None and n >= 2:
            sizes = [1, n - 1]
        elif n is None and all(c.denominator == 1 and c % 2 == 0 for c in d.terms.values()):
            sizes = [d / 2, d / 2]
        else:
            sizes = [d]
        for v in self.b.op("split", [x], {"axis": ax, "sizes": sizes}).results:
            self.vals.append(v)

    def expand(self):
        x = self.pick(lambda v: v.type.rank <= 3)
        if x is None:
            return
        shape = [self.draw(st.sampled_from(ARG_DIMS)) if d == 1 else d for d in x.type.shape]
        if self.draw(st.booleans()):
            shape.insert(0, self.draw(st.sampled_from(ARG_DIMS)))
        self.emit("expand", x, shape=shape)

    def tile(self):
        x = self.pick()
        if x is not None:
            reps = [self.draw(st.sampled_from([Dim.const(1), Dim.const(2), Dim.of("batch")])) for _ in x.type.shape]
            self.emit("tile", x, repeats=reps)

    def reduce(self):
        x = self.pick()
        if x is None:
            return
        op = self.draw(st.sampled_from(["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"]))
        axes = self.draw(st.lists(st.integers(0, x.type.rank - 1), unique=True)) if x.type.rank else []
        self.emit(op, x, axes=axes, keepdims=self.draw(st.booleans()))

    def argreduce(self):
        x = self.pick(lambda v: v.type.rank >= 1)
        if x is not None:
            self.emit(self.draw(st.sampled_from(["argmax", "argmin"])), x, axis=self.axis(x.type.rank),
                      keepdims=self.draw(st.booleans()), select_last_index=self.draw(st.booleans()))

    def cumsum(self):
        x = self.pick(lambda v: v.type.rank >= 1)
        if x is not None:
            self.emit("cumsum", x, axis=self.axis(x.type.rank), exclusive=self.draw(st.booleans()),
                      reverse=self.draw(st.booleans()))

    def softmax(self):
        x = self.pick(lambda v: v.type.rank >= 1 and v.type.dtype.is_float)
        if x is not None:
            self.emit("softmax", x, axis=self.axis(x.type.rank), log=self.draw(st.booleans()))

    def norm(self):
        x = self.pick(lambda v: v.type.rank >= 1 and v.type.dtype.is_float)
        if x is None:
            return
        k = x.type.shape[-1]
        scale = self.weight(TensorType([k], x.type.dtype))
        eps = self.draw(st.floats(1e-12, 1e-2))
        if self.draw(st.booleans()):
            self.emit("rms_norm", x, scale, epsilon=eps)
        else:
            bias = [self.weight(TensorType([k], x.type.dtype))] if self.draw(st.booleans()) else []
            self.emit("layer_norm", x, scale, *bias, epsilon=eps, axis=-1)

    def matmul(self):
        x = self.pick(lambda v: v.type.rank >= 2)
        if x is None:
            return
        r = x.type.rank
        xt = self.emit("transpose", x, perm=list(range(r - 2)) + [r - 1, r - 2])
        self.emit("matmul", x, xt)

    def gather(self):
        idx = self.pick(lambda v: v.type.dtype.is_int and v.type.rank <= 2)
        if idx is None:
            idx = self.range()
        table = self.weight(TensorType([self.draw(st.integers(1, 50)), self.draw(st.sampled_from(ARG_DIMS))],
                                       self.draw(st.sampled_from(FLOATS))))
        self.emit("gather", table, idx)

    def range(self) -> Value:
        start, limit, delta = self.draw(st.sampled_from([
            (Dim.of("past"), Dim.of("past+seq"), 1), (Dim.const(0), Dim.of("seq"), 1),
            (Dim.const(3), Dim.const(11), 2), (Dim.const(5), Dim.const(-1), -2),
        ]))
        dtype = self.draw(st.sampled_from([DType.i64, DType.i32]))
        return self.emit("range", start=start, limit=limit, delta=delta, dtype=dtype)

    def constant(self):
        v = self.b.constant(self.draw(denses()).array)
        self.vals.append(v)

    def new_weight(self):
        shape = self.draw(st.lists(st.sampled_from(ARG_DIMS), max_size=3))
        self.weight(TensorType(shape, self.draw(st.sampled_from(ALL_DTYPES))))

    def region(self):
        if self.depth >= 2:
            return
        operands = self.draw(st.lists(st.sampled_from(self.vals), max_size=2)) if self.vals else []
        body = self.draw(graphs(self.m, "region", [v.type for v in operands], max_ops=4, depth=self.depth + 1))
        op = self.b.op(self.draw(st.sampled_from(["group", "section"])), operands, self.draw(attr_dicts),
                       regions=[body])
        self.vals.extend(op.results)

    GENERATORS = ["unary", "binary", "cast", "clip", "where", "reshape", "transpose", "concat", "slice",
                  "split", "expand", "tile", "reduce", "argreduce", "cumsum", "softmax", "norm", "matmul",
                  "gather", "range", "constant", "new_weight", "region"]


@st.composite
def graphs(draw, module: Module, name: str, arg_types: list[TensorType] | None = None,
           max_ops: int = 10, depth: int = 0) -> Graph:
    if arg_types is None:
        arg_types = draw(st.lists(
            st.builds(TensorType, st.lists(st.sampled_from(ARG_DIMS), max_size=3), st.sampled_from(NUMERIC)),
            max_size=3))
    g = Graph(name, arg_types, [draw(value_names) for _ in arg_types])
    gen = _Gen(draw, module, g, depth)
    for _ in range(draw(st.integers(0, max_ops))):
        getattr(gen, draw(st.sampled_from(_Gen.GENERATORS)))()
    for op in g.ops:
        op.loc = draw(st.none() | texts)
        for r in op.results:
            r.name = draw(value_names)
    outs = draw(st.lists(st.sampled_from(gen.vals), max_size=3)) if gen.vals else []
    g.set_outputs(outs, [draw(st.none() | texts) for _ in outs])
    return g


@st.composite
def modules(draw, max_ops: int = 10) -> Module:
    m = Module()
    m.attrs = draw(attr_dicts)
    names = draw(st.lists(symbol_names, min_size=1, max_size=2, unique=True))
    for name in names:
        m.add_graph(draw(graphs(m, name, max_ops=max_ops)))
    assert all(op.attrs.get("value") is None or op.attrs["value"].array.size <= MAX_INLINE_ELEMENTS
               for g in m.graphs.values() for op in g.walk() if op.opname == "constant")
    return m
