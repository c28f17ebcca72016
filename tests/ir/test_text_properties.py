"""Property tests of the text format on randomly generated valid modules."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irgen import modules

from rduflow.ir import ParseError, VerifyError, module_diff, parse_module, print_module, verify_module

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(modules())
def test_generated_modules_verify_and_round_trip(m):
    verify_module(m)  # the generator only builds valid IR
    text = print_module(m)
    m2 = parse_module(text)
    assert print_module(m2) == text
    assert module_diff(m, m2) == []  # the text carried everything, not just something self-consistent
    verify_module(m2)


@SETTINGS
@given(modules())
def test_clone_is_structurally_equal_and_independent(m):
    before = print_module(m)
    c = m.clone()
    assert module_diff(m, c, names=True) == []
    assert print_module(c) == before
    for g in c.graphs.values():  # mutate the clone: the original must not notice
        for op in list(g.walk()):
            op.loc = "changed"
        g.ops.clear()
        g.set_outputs([])
    c.attrs["new"] = 1
    assert print_module(m) == before


# Text mutations that keep the text close to valid, so the parser gets deep before failing.
_SNIPPETS = ["%", "@", "{", "}", "(", ")", "[", "]", "<", ">", ",", ":", "=", "-", "*", "/", "+", '"', "\\",
             "!", "0x", "nan", "inf", "-inf", "dense", "region", "return", "loc", "as", "f32", "i4", "bool",
             "1/0", "s/t", "9" * 30, "1e999", '"\\q"', "\n", " ", "true", "weight", "graph", "module", "%x"]


@st.composite
def garbled(draw):
    text = print_module(draw(modules(max_ops=6)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        how = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        if how == "delete":
            text = text[:i] + text[j:]
        elif how == "insert":
            text = text[:i] + draw(st.sampled_from(_SNIPPETS) | st.text(max_size=3)) + text[i:]
        elif how == "replace":
            text = text[:i] + draw(st.sampled_from(_SNIPPETS)) + text[j:]
        elif how == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:  # move a piece elsewhere
            piece, rest = text[i:j], text[:i] + text[j:]
            k = draw(st.integers(0, len(rest)))
            text = rest[:k] + piece + rest[k:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(garbled())
def test_garbled_text_parses_or_raises_parse_error(text):
    try:
        m = parse_module(text)
    except ParseError as e:
        assert e.line is None or e.line >= 1
        return
    # What parses prints, and verification reports problems only as VerifyError.
    text2 = print_module(m)
    assert print_module(parse_module(text2)) == text2
    try:
        verify_module(m)
    except VerifyError:
        pass
