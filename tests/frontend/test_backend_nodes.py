"""The ONNX backend node tests shipped with the onnx package, for every operator the importer converts.

Each case is imported and run on the IR interpreter; outputs must match onnx's expected
values within the case's tolerances. Inputs that the IR takes as attributes (a Reshape's
shape, Slice bounds, ...; a converter's ``static_inputs``) are made initializers first, as
they would be in an exported model. Cases using an operator without a converter are not
collected; cases of supported operators that are excluded are listed in ``EXCLUDED`` with
the reason (docs/importer.md repeats the list).
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases

from rduflow.compiler.frontend.onnx import OnnxImportError, import_onnx
from rduflow.compiler.frontend.onnx.model_file import DEFAULT_DOMAINS, MIN_OPSET
from rduflow.compiler.frontend.onnx.registry import get_converter
from rduflow.ir import RduflowError, run

_WINDOW = ("the window length, a graph input, reaches Range as a float computed at run time; only "
           "integer values known at run time become symbols")
_LOW_PRECISION = ("16-bit attention: the reference rounds every intermediate to bf16/fp16, the IR's "
                  "reference semantics compute in f64 and round once; 1-ulp differences exceed the case's rtol")
EXCLUDED: dict[str, str] = {
    "test_identity_sequence": "sequence-typed input: the IR has tensors only",
    "test_identity_opt": "optional-typed input: the IR has tensors only",
    **{f"test_{w}window{s}_expanded": _WINDOW for w in ("hann", "hamming", "blackman") for s in ("", "_symmetric")},
    **{f"test_attention_{n}{e}": _LOW_PRECISION for e in ("", "_expanded")
       for n in ("4d_causal_bf16", "4d_causal_fp16", "4d_attn_mask_causal_bf16", "3d_causal_bf16")},
    "test_attention_4d_padded_kv_bf16": _LOW_PRECISION,
    "test_attention_4d_causal_padded_kv_bf16": _LOW_PRECISION,
}

# Substrings of case names excluded as a group, with the reason.
_NO_DTYPE = "element type the IR lacks (FNUZ float8, float4, float8 e8m0, 2-bit integers)"
EXCLUDED_GROUPS: dict[str, str] = {
    "FNUZ": _NO_DTYPE, "FLOAT4E2M1": _NO_DTYPE, "float4e2m1": _NO_DTYPE, "E8M0": _NO_DTYPE, "e8m0": _NO_DTYPE,
    "INT2": _NO_DTYPE, "int2": _NO_DTYPE,
    "test_training_dropout": "training-mode Dropout is random; the importer takes inference graphs",
}


@functools.cache
def _cases() -> list:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return collect_testcases(None)


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {"" if o.domain in DEFAULT_DOMAINS else o.domain: o.version for o in model.opset_import}


def unsupported_reason(case) -> str | None:
    """Why the importer cannot take this case at all (None: it converts every node)."""
    opsets = _opsets(case.model)
    if opsets.get("", 0) < MIN_OPSET:
        return f"ai.onnx opset {opsets.get('', 0)} < {MIN_OPSET}"
    for node in case.model.graph.node:
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        conv = get_converter(domain, node.op_type)
        if domain not in opsets or conv is None or conv.impl_for(opsets[domain]) is None:
            return f"no converter for {domain or 'ai.onnx'} {node.op_type}"
    return None


def exclusion(name: str) -> str | None:
    if name in EXCLUDED:
        return EXCLUDED[name]
    for part, reason in EXCLUDED_GROUPS.items():
        if part in name:
            return reason
    return None


def _params():
    out = []
    for case in _cases():
        if unsupported_reason(case):
            continue
        reason = exclusion(case.name)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


def _array(x) -> np.ndarray:
    """Test data: arrays, or TensorProtos for element types numpy lacks (float8, int4)."""
    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else np.asarray(x)


def _freeze_static_inputs(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, dict]:
    """Graph inputs feeding attribute-like operands become initializers; the rest stay inputs."""
    g = model.graph
    names = [i.name for i in g.input]
    values = dict(zip(names, inputs))
    static: set[str] = set()
    for node in g.node:
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        conv = get_converter(domain, node.op_type)
        for pos in conv.static_inputs if conv else ():
            if pos < len(node.input) and node.input[pos] in values:
                static.add(node.input[pos])
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in static]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for name in sorted(static):
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(values[name]), name))
    return m, {k: v for k, v in values.items() if k not in static}


def run_case(case) -> None:
    """Import and run every data set of ``case``; raise if any output differs from onnx's."""
    for inputs, expected in case.data_sets:
        inputs = [_array(x) for x in inputs]
        expected = [_array(x) for x in expected]
        model, feeds = _freeze_static_inputs(case.model, inputs)
        got = run(import_onnx(model), feeds)
        for vo, want in zip(case.model.graph.output, expected):
            out = got[vo.name]
            assert out.shape == want.shape, f"{vo.name}: shape {out.shape}, expected {want.shape}"
            assert out.dtype == want.dtype, f"{vo.name}: dtype {out.dtype}, expected {want.dtype}"
            if want.dtype == object:
                assert out.tolist() == want.tolist()
            elif want.dtype.kind in "fc" or str(want.dtype) in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
                np.testing.assert_allclose(out.astype(np.float64), want.astype(np.float64),
                                           rtol=case.rtol, atol=case.atol, equal_nan=True, err_msg=vo.name)
            else:
                np.testing.assert_array_equal(out, want, err_msg=vo.name)


@pytest.mark.parametrize("case", _params())
def test_backend_node(case):
    run_case(case)


def test_exclusions_name_supported_cases():
    """Every exclusion names a case whose operators the importer converts (so the list stays honest)."""
    by_name = {c.name: c for c in _cases()}
    for name in EXCLUDED:
        assert name in by_name, f"EXCLUDED names unknown case {name}"
        assert unsupported_reason(by_name[name]) is None, f"{name} is not collected anyway"


def test_excluded_cases_do_fail():
    """An exclusion that starts passing (the importer learned something) must be dropped from the lists."""
    for case in _cases():
        if unsupported_reason(case) or not exclusion(case.name):
            continue
        with pytest.raises((AssertionError, RduflowError)):
            run_case(case)
        assert unsupported_reason(case) is None


def test_unsupported_case_is_refused_clearly():
    case = next(c for c in _cases() if unsupported_reason(c) and unsupported_reason(c).startswith("no converter"))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(case.model)
    assert e.value.exit_code == 2
