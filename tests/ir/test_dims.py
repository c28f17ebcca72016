"""Symbolic dimensions: algebra (property-tested), text form, substitution, division."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rduflow.ir import Dim, DimError, ParseError, parse_dim

SYMS = ["a", "b", "seq", "past"]


# An expression tree alongside its Dim, so evaluation can be checked independently of Dim.
@st.composite
def exprs(draw, depth: int = 3):
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        if draw(st.booleans()):
            n = draw(st.integers(-5, 9))
            return ("int", n), Dim.const(n)
        s = draw(st.sampled_from(SYMS))
        return ("sym", s), Dim.sym(s)
    op = draw(st.sampled_from(["+", "-", "*"]))
    (ta, da), (tb, db) = draw(exprs(depth - 1)), draw(exprs(depth - 1))
    d = da + db if op == "+" else da - db if op == "-" else da * db
    return (op, ta, tb), d


def _eval(tree, env) -> int:
    if tree[0] == "int":
        return tree[1]
    if tree[0] == "sym":
        return env[tree[1]]
    a, b = _eval(tree[1], env), _eval(tree[2], env)
    return a + b if tree[0] == "+" else a - b if tree[0] == "-" else a * b


dims = exprs().map(lambda p: p[1])
envs = st.fixed_dictionaries({s: st.integers(-6, 6) for s in SYMS})


@given(dims, dims, dims)
def test_ring_laws(x, y, z):
    assert x + y == y + x
    assert x * y == y * x
    assert (x + y) + z == x + (y + z)
    assert (x * y) * z == x * (y * z)
    assert x * (y + z) == x * y + x * z
    assert x + 0 == x and x * 1 == x and x * 0 == 0
    assert x - x == 0 and x + (-x) == 0
    assert hash(x + y) == hash(y + x)


@given(exprs(), envs)
def test_evaluate_matches_independent_evaluation(pair, env):
    tree, d = pair
    assert d.evaluate(env) == _eval(tree, env)
    assert d.subs(env) == _eval(tree, env)
    assert d.subs(env).is_const


@given(exprs(), envs, st.sampled_from(SYMS))
def test_partial_subs_then_evaluate_agrees(pair, env, keep):
    tree, d = pair
    partial = d.subs({k: v for k, v in env.items() if k != keep})
    assert partial.symbols <= {keep}
    assert partial.evaluate({keep: env[keep]}) == _eval(tree, env)


@given(exprs(), dims)
def test_subs_by_expression_composes(pair, repl):
    # Substituting a symbol by an expression, then evaluating, equals evaluating with its value.
    tree, d = pair
    env = {"a": 2, "b": -3, "seq": 5, "past": 7}
    inner = repl.evaluate(env)
    assert d.subs({"a": repl}).evaluate(env) == _eval(tree, {**env, "a": inner})


@given(dims)
def test_str_parses_back(d):
    assert parse_dim(str(d)) == d
    assert Dim.of(str(d)) == d


@given(dims, st.integers(-5, 5).filter(bool))
def test_fraction_coefficients_print_and_parse(d, k):
    q = d / k
    assert parse_dim(str(q)) == q
    assert q * k == d


@given(dims, st.sampled_from(SYMS), st.integers(1, 6))
def test_exact_division_by_a_term(x, s, k):
    term = Dim.sym(s) * k
    assert (x * term) / term == x
    if x.is_const and x != 0:
        assert (x * term) // term == x


@given(st.integers(-50, 50), st.integers(-7, 7).filter(bool))
def test_floor_division_of_constants_is_floor(a, b):
    assert Dim.const(a) // b == a // b
    assert a // Dim.const(b) == a // b


def test_inexact_division_raises():
    s, t = Dim.sym("s"), Dim.sym("t")
    with pytest.raises(DimError, match="exactly"):
        (s + 1) / t
    with pytest.raises(DimError, match="not a single term"):
        s / (s + t)
    with pytest.raises(DimError, match="zero"):
        s / 0
    with pytest.raises(DimError, match="zero"):
        Dim.const(3) // 0
    with pytest.raises(DimError, match="not divisible"):
        (s * 3) // 2
    assert (s * 4) // 2 == s * 2


def test_canonical_form_and_printing():
    assert str(Dim.of("seq+past")) == "past+seq"
    assert str(Dim.of("2*b*s - 3 + s*b")) == "3*b*s-3"
    assert str(Dim.of("s*s + 1")) == "s*s+1"
    assert str(Dim.of("-s")) == "-s"
    assert str(Dim.of("s/2")) == "s/2"
    assert str(Dim.of("3*s/2 - 1/2")) == "3*s/2-1/2"
    assert str(Dim()) == "0"
    assert Dim.of("(a+b)*(a-b)") == Dim.of("a*a - b*b")


def test_ints_and_dims_mix_and_hash_alike():
    assert Dim.const(3) == 3 and 3 == Dim.const(3)
    assert hash(Dim.const(3)) == hash(3) and hash(Dim()) == hash(0)
    assert {Dim.const(3): "x"}[3] == "x"
    assert Dim.of(np.int64(4)) == 4
    assert Dim.const(Fraction(1, 2)) == Fraction(1, 2)
    assert 2 - Dim.sym("s") == -(Dim.sym("s") - 2)
    assert 6 / Dim.const(3) == 2
    assert not Dim() and Dim.sym("s") and Dim.const(-1)


def test_constant_queries():
    assert int(Dim.const(7)) == 7 and float(Dim.const(Fraction(1, 4))) == 0.25
    assert Dim.of("s").maybe_int() is None and Dim.const(Fraction(1, 2)).maybe_int() is None
    with pytest.raises(DimError, match="symbolic"):
        int(Dim.sym("s"))
    with pytest.raises(DimError, match="not an integer"):
        int(Dim.const(Fraction(1, 2)))
    assert Dim.const(2) < 3 and Dim.const(5) >= 5
    with pytest.raises(DimError, match="symbolic"):
        Dim.sym("s") < 3


def test_evaluate_names_missing_symbols():
    with pytest.raises(DimError, match="no value for symbol.*past"):
        Dim.of("past+seq").evaluate({"seq": 1})


def test_symbol_names_are_identifiers_not_keywords():
    for bad in ["", "1x", "a b", "a+b", "nan", "true", "dense", "weight"]:
        with pytest.raises(DimError, match="cannot name a dimension symbol"):
            Dim.sym(bad)
    assert Dim.sym("batch_size.0$").symbols == {"batch_size.0$"}
    with pytest.raises(TypeError):
        Dim.of(1.5)
    with pytest.raises(TypeError):
        Dim.of(True)


@pytest.mark.parametrize("text, col", [("a+", 3), ("a**b", 3), ("2 % 3", 3), ("s/t", 2), ("nan", 1), ("", 1)])
def test_parse_dim_errors_have_positions(text, col):
    with pytest.raises(ParseError) as e:
        parse_dim(text)
    assert e.value.column == col


@settings(max_examples=50)
@given(dims)
def test_power_of_symbol_monomials(d):
    # Products keep repeated symbols as powers: (x)(x) has twice the degree.
    sq = d * d
    if not d.is_const:
        assert max(len(m) for m in sq.terms) == 2 * max(len(m) for m in d.terms)
