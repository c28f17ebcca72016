"""quantize-weights and kv-cache on before/expected pairs (the stored precision of weights and the KV cache)."""

import re

import pytest

from rduflow.compiler.passes import PassFailure, PassManager, PipelineError, format_pipeline, parse_pipeline
from rduflow.compiler.passes.precision import appended_cache_outputs
from rduflow.compiler.passes.testing import assert_structural_equal
from rduflow.ir import parse_module


def check(pipeline: str, before_text: str, expected_text: str):
    after = parse_module(before_text)
    PassManager(parse_pipeline(pipeline)).run(after)
    assert_structural_equal(after, parse_module(expected_text))
    return after


# A matmul weight (quantized), one read through a transpose (quantized), an embedding read by
# gather and a bias (both kept wide).
WEIGHTS = """module {
  weight @w : f32[256, 8] = shape_only
  weight @t : f32[8, 256] = shape_only
  weight @emb : f32[16, 256] = shape_only
  weight @b : f32[8] = shape_only
  graph @main(%ids: i64[n], %x: f32[n, 256]) -> (f32[n, 8], f32[n, 256], f32[n, 8]) {
    %w = weight() {ref = @w} : f32[256, 8]
    %y = matmul(%x, %w) : f32[n, 8]
    %b = weight() {ref = @b} : f32[8]
    %z = add(%y, %b) : f32[n, 8]
    %emb = weight() {ref = @emb} : f32[16, 256]
    %e = gather(%emb, %ids) {axis = 0} : f32[n, 256]
    %t = weight() {ref = @t} : f32[8, 256]
    %tt = transpose(%t) {perm = [1, 0]} : f32[256, 8]
    %u = matmul(%x, %tt) : f32[n, 8]
    return %z as "z", %e as "e", %u as "u" } }"""


def test_quantize_weights_fp8_casts_back_before_the_matmul():
    check("quantize-weights{dtype=fp8}", WEIGHTS, """module {
  weight @w : f8e4m3[256, 8] = shape_only
  weight @t : f8e4m3[8, 256] = shape_only
  weight @emb : f32[16, 256] = shape_only
  weight @b : f32[8] = shape_only
  graph @main(%ids: i64[n], %x: f32[n, 256]) -> (f32[n, 8], f32[n, 256], f32[n, 8]) {
    %w = weight() {ref = @w} : f8e4m3[256, 8]
    %w.wide = cast(%w) {to = !f32} : f32[256, 8]
    %y = matmul(%x, %w.wide) : f32[n, 8]
    %b = weight() {ref = @b} : f32[8]
    %z = add(%y, %b) : f32[n, 8]
    %emb = weight() {ref = @emb} : f32[16, 256]
    %e = gather(%emb, %ids) {axis = 0} : f32[n, 256]
    %t = weight() {ref = @t} : f8e4m3[8, 256]
    %t.wide = cast(%t) {to = !f32} : f32[8, 256]
    %tt = transpose(%t.wide) {perm = [1, 0]} : f32[256, 8]
    %u = matmul(%x, %tt) : f32[n, 8]
    return %z as "z", %e as "e", %u as "u" } }""")


def test_quantize_weights_int4_blocks_of_input_rows_and_int8_per_channel():
    # int4: @w has 256 input rows, two blocks of 128; @t (8 rows, read transposed) gets one scale per column.
    expected = """module {
  weight @w : i4[256, 8] = shape_only
  weight @t : i4[8, 256] = shape_only
  weight @emb : f32[16, 256] = shape_only
  weight @b : f32[8] = shape_only
  weight @w.scale : f32[%s] = shape_only
  weight @t.scale : f32[256] = shape_only
  graph @main(%%ids: i64[n], %%x: f32[n, 256]) -> (f32[n, 8], f32[n, 256], f32[n, 8]) {
    %%w = weight() {ref = @w} : i4[256, 8]
    %%ws = weight() {ref = @w.scale} : f32[%s]
    %%wd = dequantize_linear(%%w, %%ws) {axis = %s, block_size = %s} : f32[256, 8]
    %%y = matmul(%%x, %%wd) : f32[n, 8]
    %%b = weight() {ref = @b} : f32[8]
    %%z = add(%%y, %%b) : f32[n, 8]
    %%emb = weight() {ref = @emb} : f32[16, 256]
    %%e = gather(%%emb, %%ids) {axis = 0} : f32[n, 256]
    %%t = weight() {ref = @t} : i4[8, 256]
    %%ts = weight() {ref = @t.scale} : f32[256]
    %%td = dequantize_linear(%%t, %%ts) {axis = 1, block_size = 0} : f32[8, 256]
    %%tt = transpose(%%td) {perm = [1, 0]} : f32[256, 8]
    %%u = matmul(%%x, %%tt) : f32[n, 8]
    return %%z as "z", %%e as "e", %%u as "u" } }"""
    check("quantize-weights{dtype=int4}", WEIGHTS, expected % ("2, 8", "2, 8", 0, 128))
    check("quantize-weights{dtype=int4,block-size=64}", WEIGHTS, expected % ("4, 8", "4, 8", 0, 64))
    # a block larger than the matrix: one scale per output channel, as for int8
    check("quantize-weights{dtype=int4,block-size=512}", WEIGHTS, expected % ("8", "8", 1, 0))
    check("quantize-weights{dtype=int8}", WEIGHTS, expected.replace("i4[", "i8[") % ("8", "8", 1, 0))


DECODE = """module { graph @main(%past: f32[b, 2, p, 4], %x: f32[b, 2, s, 4]) -> (f32[b, 2, p+s, 4], f32[b, 2, p+s, 4]) {
    %k = neg(%x) : f32[b, 2, s, 4]
    %cache = concat(%past, %k) {axis = 2} : f32[b, 2, p+s, 4]
    %r = exp(%cache) : f32[b, 2, p+s, 4]
    return %r as "out", %cache as "present" } }"""


def test_kv_cache_fp8_stores_the_cache_input_and_the_appended_keys_narrow():
    after = check("kv-cache{dtype=fp8}", DECODE, """module {
  graph @main(%past: f8e4m3[b, 2, p, 4], %x: f32[b, 2, s, 4]) -> (f32[b, 2, p+s, 4], f8e4m3[b, 2, p+s, 4]) {
    %k = neg(%x) : f32[b, 2, s, 4]
    %k8 = cast(%k) {to = !f8e4m3} : f8e4m3[b, 2, s, 4]
    %cache = concat(%past, %k8) {axis = 2} : f8e4m3[b, 2, p+s, 4]
    %wide = cast(%cache) {to = !f32} : f32[b, 2, p+s, 4]
    %r = exp(%wide) : f32[b, 2, p+s, 4]
    return %r as "out", %cache as "present" } }""")
    assert appended_cache_outputs(after) == ["present"]


def test_kv_cache_int8_quantizes_per_tensor_with_constant_scales():
    check("kv-cache{dtype=int8}", DECODE, """module {
  graph @main(%past: i8[b, 2, p, 4], %x: f32[b, 2, s, 4]) -> (f32[b, 2, p+s, 4], i8[b, 2, p+s, 4]) {
    %k = neg(%x) : f32[b, 2, s, 4]
    %s1 = constant() {value = dense<f32[] [1.0]>} : f32[]
    %k8 = quantize_linear(%k, %s1) {axis = 0, dtype = !i8} : i8[b, 2, s, 4]
    %cache = concat(%past, %k8) {axis = 2} : i8[b, 2, p+s, 4]
    %s2 = constant() {value = dense<f32[] [1.0]>} : f32[]
    %wide = dequantize_linear(%cache, %s2) {axis = 0} : f32[b, 2, p+s, 4]
    %r = exp(%wide) : f32[b, 2, p+s, 4]
    return %r as "out", %cache as "present" } }""")


PREFILL = """module { graph @main(%x: f32[b, 2, s, 4]) -> (f32[b, 2, s, 4], f32[b, 2, s, 4]) {
    %k = neg(%x) : f32[b, 2, s, 4]
    %r = exp(%k) : f32[b, 2, s, 4]
    return %r as "out", %k as "present" } }"""


def test_kv_cache_outputs_narrows_the_cache_a_prefill_graph_writes():
    check("kv-cache{dtype=fp8,outputs=[present]}", PREFILL, """module {
  graph @main(%x: f32[b, 2, s, 4]) -> (f32[b, 2, s, 4], f8e4m3[b, 2, s, 4]) {
    %k = neg(%x) : f32[b, 2, s, 4]
    %k8 = cast(%k) {to = !f8e4m3} : f8e4m3[b, 2, s, 4]
    %r = exp(%k) : f32[b, 2, s, 4]
    return %r as "out", %k8 as "present" } }""")


def test_kv_cache_needs_a_cache():
    with pytest.raises(PassFailure, match="appends to no KV-cache input"):
        PassManager(parse_pipeline("kv-cache{dtype=fp8}")).run(parse_module(PREFILL))
    with pytest.raises(PassFailure, match="no graph output named 'nope'"):
        PassManager(parse_pipeline("kv-cache{dtype=fp8,outputs=[nope]}")).run(parse_module(PREFILL))


@pytest.mark.parametrize("text, message", [
    ("quantize-weights{dtype=int2}", "dtype must be one of fp8, int8, int4"),
    ("quantize-weights{dtype=int4,block-size=0}", "block-size must be at least 1"),
    ("kv-cache{dtype=int4}", "dtype must be one of fp8, int8"),
])
def test_bad_options(text, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        parse_pipeline(text)


def test_fp8_is_the_default():
    assert parse_pipeline("quantize-weights,kv-cache") == parse_pipeline("quantize-weights{dtype=fp8},kv-cache{dtype=fp8}")


def test_pipeline_text_round_trips():
    text = "quantize-weights{dtype=int4,block-size=64},kv-cache{dtype=int8,outputs=[present.0.key,present.0.value]}"
    assert format_pipeline(parse_pipeline(text)) == text
    assert format_pipeline(parse_pipeline("quantize-weights{dtype=int4,block-size=128}")) == "quantize-weights{dtype=int4}"
