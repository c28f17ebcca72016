"""Element types: their table, dense constants bit for bit, and weight data of each kind."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rduflow.ir import (
    Dense, DType, ExternalFile, InMemory, NpzEntry, OnnxInitializer, ParseError, ShapeOnly, TensorType,
    Weight, WeightError, parse_module, print_module,
)
from rduflow.ir.attributes import format_dense

REQUIRED = {"f32": 32, "f16": 16, "bf16": 16, "f8e4m3": 8, "f8e5m2": 8, "i64": 64, "i32": 32, "i8": 8,
            "i4": 4, "u8": 8, "bool": 8}


@pytest.mark.parametrize("name, bits", sorted(REQUIRED.items()))
def test_required_dtypes_exist_with_their_widths(name, bits):
    dt = DType(name)
    assert dt.bits == bits and dt.nbytes == Fraction(bits, 8)
    assert DType.from_numpy(dt.numpy) is dt
    assert str(dt) == name


def test_dtype_classes_and_numpy_types():
    assert DType.bf16.numpy == np.dtype(ml_dtypes.bfloat16)
    assert DType.f8e4m3.numpy == np.dtype(ml_dtypes.float8_e4m3fn)
    assert DType.f8e5m2.numpy == np.dtype(ml_dtypes.float8_e5m2)
    assert DType.i4.numpy == np.dtype(ml_dtypes.int4)
    assert all(DType(n).is_float for n in ["f32", "f16", "bf16", "f8e4m3", "f8e5m2"])
    assert all(DType(n).is_int for n in ["i64", "i32", "i8", "i4", "u8"])
    assert not DType.bool.is_int and not DType.bool.is_float
    assert TensorType([3, 5], DType.i4).nbytes == Fraction(15, 2)
    with pytest.raises(ValueError):
        DType.from_numpy(np.complex64)


def _module_with(d: Dense) -> str:
    return 'module {c = ' + format_dense(d) + '} {\n}\n'


def _bits(a: np.ndarray) -> bytes:
    return a.tobytes()


@pytest.mark.parametrize("dt", [DType.f32, DType.f16, DType.bf16, DType.f8e4m3, DType.f8e5m2, DType.f64])
@given(data=st.data())
def test_every_float_bit_pattern_prints_and_parses_back_exactly(dt, data):
    width = 8 * dt.numpy.itemsize
    bits = data.draw(st.lists(st.integers(0, 2**width - 1), max_size=8))
    arr = np.array(bits, dtype=f"<u{dt.numpy.itemsize}").view(dt.numpy)
    text = _module_with(Dense(arr))
    back = parse_module(text).attrs["c"]
    assert back.array.dtype == dt.numpy and _bits(back.array) == _bits(arr)
    assert print_module(parse_module(text)) == text


def test_special_float_values_print_readably():
    bf = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, 3.0e38], dtype=ml_dtypes.bfloat16)
    assert format_dense(Dense(bf)) == "dense<bf16[7] [0.0, -0.0, inf, -inf, nan, 1.5, 3.00405527047391e+38]>"
    e4 = np.array([0x7F, 0xFF, 0x80, 0x7E, 0x01], dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
    # e4m3 has no infinity; 0x7f is its NaN, 0xff the NaN with the sign bit, kept as bits.
    assert format_dense(Dense(e4)) == "dense<f8e4m3[5] [nan, 0xff, -0.0, 448.0, 0.001953125]>"
    f32 = np.array([0x7FC00001], dtype=np.uint32).view(np.float32)
    assert format_dense(Dense(f32)) == "dense<f32[1] [0x7fc00001]>"


@pytest.mark.parametrize("text, message", [
    ("dense<f8e4m3[1] [inf]>", "f8e4m3 has no infinity"),
    ("dense<f8e4m3[1] [1000.0]>", "out of range for f8e4m3"),
    ("dense<f16[1] [1e10]>", "out of range for f16"),
    ("dense<f32[1] [99999999999999999999999999999999999999999999999999999999]>", "out of range for f32"),
    ("dense<i4[2] [7, 8]>", "8 is out of range for i4 \\(-8 to 7\\)"),
    ("dense<u8[1] [-1]>", "out of range for u8"),
    ("dense<i8[1] [1.5]>", "i8 dense holds integers"),
    ("dense<bool[1] [1]>", "bool dense holds true/false"),
    ("dense<f32[1] [true]>", "f32 dense holds numbers"),
    ("dense<f16[1] [0x10000]>", "wider than f16"),
    ("dense<f32[2, 2] [1.0]>", "needs 4 value"),
    ("dense<q7[1] [1]>", "unknown element type 'q7'"),
])
def test_dense_values_the_type_cannot_hold_are_parse_errors(text, message):
    with pytest.raises(ParseError, match=message) as e:
        parse_module("module {c = " + text + "} {\n}")
    assert (e.value.line, e.value.column) == (1, 19)


def test_int_and_bool_and_string_dense_round_trip():
    for arr in [np.array([-8, 7, 0, -1], dtype=ml_dtypes.int4), np.array([0, 15], dtype=ml_dtypes.uint4),
                np.array([[True, False]]), np.array([2**64 - 1, 0], dtype=np.uint64),
                np.array([-2**63], dtype=np.int64), np.array(["a\"\\\n", "é"], dtype=object)]:
        d = Dense(arr)
        back = parse_module(_module_with(d)).attrs["c"]
        assert back == d and back.array.dtype == d.array.dtype


def test_dense_is_a_private_read_only_copy_compared_by_bits():
    a = np.array([1.0, 2.0], dtype=np.float32)
    d = Dense(a)
    a[0] = 5.0
    assert a.flags.writeable and d.array[0] == 1.0 and not d.array.flags.writeable
    assert Dense(np.float32(np.nan)) == Dense(np.float32(np.nan))
    assert Dense(np.array([0.0])) != Dense(np.array([-0.0]))
    assert Dense(np.array([1], dtype=np.int32)) != Dense(np.array([1], dtype=np.int64))
    assert Dense(np.array(3.0)).shape == ()
    big_endian = Dense(np.array([1.5], dtype=">f4"))
    assert big_endian.dtype is DType.f32 and big_endian == Dense(np.array([1.5], dtype=np.float32))
    with pytest.raises(TypeError):
        Dense(np.array([object()], dtype=object))


# -- weight data -------------------------------------------------------------------------------------
def test_int4_external_data_is_packed_two_per_byte_low_nibble_first(tmp_path):
    # Values 1, 2, 3, -1, -8 packed by hand: 0x21, 0xf3, 0x08 (last high nibble is padding).
    (tmp_path / "w.bin").write_bytes(b"\xAA" + bytes([0x21, 0xF3, 0x08]))
    w = Weight("q", TensorType([5], "i4"), ExternalFile("w.bin", offset=1, length=3))
    got = w.load(tmp_path)
    assert got.dtype == ml_dtypes.int4 and got.astype(np.int8).tolist() == [1, 2, 3, -1, -8]
    u = Weight("u", TensorType([2, 2], "u4"), ExternalFile("w.bin", offset=1))
    assert u.load(tmp_path).astype(np.uint8).tolist() == [[1, 2], [3, 15]]


def test_external_data_of_bf16_and_fp8_and_bool(tmp_path):
    bf = np.array([1.5, -2.0, np.inf], dtype=ml_dtypes.bfloat16)
    f8 = np.array([0.5, -448.0], dtype=ml_dtypes.float8_e4m3fn)
    (tmp_path / "d.bin").write_bytes(bf.tobytes() + f8.tobytes() + bytes([1, 0]))
    assert Weight("a", TensorType([3], "bf16"), ExternalFile("d.bin", 0, 6)).load(tmp_path).tobytes() == bf.tobytes()
    assert Weight("b", TensorType([2], "f8e4m3"), ExternalFile("d.bin", 6)).load(tmp_path).tobytes() == f8.tobytes()
    assert Weight("c", TensorType([2], "bool"), ExternalFile("d.bin", 8)).load(tmp_path).tolist() == [True, False]


def test_external_data_errors(tmp_path):
    (tmp_path / "w.bin").write_bytes(bytes(10))
    with pytest.raises(WeightError, match="too short"):
        Weight("w", TensorType([3], "f32"), ExternalFile("w.bin", offset=0)).load(tmp_path)
    with pytest.raises(WeightError, match="4 bytes on disk, 8 needed"):
        Weight("w", TensorType([2], "f32"), ExternalFile("w.bin", 0, 4)).load(tmp_path)
    with pytest.raises(WeightError, match="does not exist"):
        Weight("w", TensorType([2], "f32"), ExternalFile("nope.bin")).load(tmp_path)
    with pytest.raises(WeightError, match="symbolic shape"):
        Weight("w", TensorType(["n"], "f32"), ExternalFile("w.bin")).load(tmp_path)
    with pytest.raises(WeightError, match="shape-only"):
        Weight("w", TensorType([2], "f32"), ShapeOnly()).load()
    with pytest.raises(WeightError, match="data is gone"):
        Weight("w", TensorType([2], "f32"), InMemory(None)).load()


def test_npz_keeps_bf16_and_int4(tmp_path):
    bf = np.array([[1.0, -0.0]], dtype=ml_dtypes.bfloat16)
    i4 = np.array([-8, 7, 3], dtype=ml_dtypes.int4)
    np.savez(tmp_path / "w.npz", bf=bf, i4=i4, f=np.ones(2, dtype=np.float32))
    assert Weight("a", TensorType([1, 2], "bf16"), NpzEntry("w.npz", "bf")).load(tmp_path).tobytes() == bf.tobytes()
    got = Weight("b", TensorType([3], "i4"), NpzEntry("w.npz", "i4")).load(tmp_path)
    assert got.dtype == ml_dtypes.int4 and got.astype(int).tolist() == [-8, 7, 3]
    with pytest.raises(WeightError, match="stored as float32, declared f16"):
        Weight("c", TensorType([2], "f16"), NpzEntry("w.npz", "f")).load(tmp_path)
    with pytest.raises(WeightError, match="no array 'zz'"):
        Weight("c", TensorType([2], "f32"), NpzEntry("w.npz", "zz")).load(tmp_path)
    with pytest.raises(WeightError, match="2 elements stored, type f32\\[3\\] needs 3"):
        Weight("c", TensorType([3], "f32"), NpzEntry("w.npz", "f")).load(tmp_path)


def test_onnx_initializer(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    init = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w0")
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w0", onnx.TensorProto.FLOAT, [2, 3])], [init])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    w = Weight("w0", TensorType([3, 2], "f32"), OnnxInitializer("m.onnx", "w0"))
    assert w.load(tmp_path).tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(WeightError, match="no initializer 'zz'"):
        Weight("w", TensorType([2], "f32"), OnnxInitializer("m.onnx", "zz")).load(tmp_path)
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(WeightError, match="cannot read"):
        Weight("w", TensorType([2], "f32"), OnnxInitializer("bad.onnx", "w")).load(tmp_path)


def test_weight_sources_print_and_parse_back():
    text = (
        "module {\n"
        '  weight @a : f32[2] = shape_only\n'
        '  weight @b : bf16[2] = memory\n'
        '  weight @c : i4[3] = external("dir/w \\"1\\".bin", offset=7)\n'
        '  weight @d : i4[3] = external("w.bin", offset=0, length=2)\n'
        '  weight @e : f8e5m2[4, n] = onnx("m.onnx", "layer.0/w")\n'
        '  weight @"f g" : u8[1] = npz("w.npz", "k\\n")\n'
        "}\n"
    )
    m = parse_module(text)
    assert print_module(m) == text
    assert m.weights["c"].source == ExternalFile('dir/w "1".bin', 7, None)
    assert m.weights["e"].source == OnnxInitializer("m.onnx", "layer.0/w")
    assert m.weights["f g"].source == NpzEntry("w.npz", "k\n")
    assert isinstance(m.weights["b"].source, InMemory) and not m.weights["b"].has_data
    assert math.isclose(float(m.weights["e"].type.nbytes.subs({"n": 2})), 8)
