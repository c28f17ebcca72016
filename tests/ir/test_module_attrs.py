"""Module attributes with a declared kind (rduflow.ir.program): typed records, printed as
plain attribute lists, parsed back into records, checked by the verifier."""

import pytest
from rduflow.ir import Graph, Module, ParseError, TensorType, VerifyError, parse_module, print_module, verify_module
from rduflow.ir.program import MemoryBytes, MemoryStore, MemoryTensor, ModelOutput, Spread, StoreTier


def _module(**attrs):
    m = Module()
    g = m.add_graph(Graph("main", [TensorType((2, 4), "f32")], ["x"]))
    g.set_outputs([g.args[0]], ["y"])
    m.attrs.update(attrs)
    return m


TYPED = {
    "sockets": 2,
    "spmd.args": (Spread(axis=1, blocks=(2, 2), copies=2),),
    "spmd.outputs": (Spread(),),
    "memory.ddr": ("weight:w",),
    "memory.bytes": MemoryBytes(weights=10, inputs_outputs=20, activations_peak=0, hbm=30, ddr=0),
    "memory.stores": (MemoryStore(store="x", kind="input", spread=Spread(axis=1), sources=("x",)),
                      MemoryStore(store="w", kind="weight", spread=Spread(), sources=("a", "b"))),
    "memory.tensors": (MemoryTensor(tensor="x#1:0-2", store="x", axis=1, start=0, stop=2),),
    "memory.tiers": (StoreTier(store="x", tier="hbm"),),
    "memory.inputs": ("x",),
    "memory.outputs": (ModelOutput(name="y", store="x", slab=0, spread=Spread(axis=1)),),
}


def test_records_print_as_their_fields_and_parse_back_typed():
    m = _module(**TYPED)
    verify_module(m)
    text = print_module(m)
    # The text form is the plain positional list (unchanged from before records).
    assert 'memory.stores = [["x", "input", "split:1", ["x"]], ["w", "weight", "replicated", ["a", "b"]]]' in text
    assert 'memory.bytes = [["weights", 10], ["inputs_outputs", 20], ["activations_peak", 0], ["hbm", 30], ' \
           '["ddr", 0]]' in text
    assert 'spmd.args = ["split:1:2,2:copies=2"]' in text
    assert 'memory.tensors = [["x#1:0-2", "x", 1, 0, 2]]' in text
    back = parse_module(text)
    assert back.attrs == m.attrs
    assert back.attrs["memory.stores"][0].spread.axis == 1 and back.attrs["memory.tensors"][0].chunk == (1, 0, 2)
    assert back.attrs["memory.outputs"][0].slab == 0
    verify_module(back)
    assert print_module(back) == text


def test_a_module_attribute_of_the_wrong_shape_is_a_parse_error_naming_it():
    with pytest.raises(ParseError, match=r"memory.stores\[0\].*MemoryStore is written \[store, kind, spread, sources\]"):
        parse_module('module {memory.stores = [["x", "input"]]} {\n}\n')
    with pytest.raises(ParseError, match=r"memory.stores\[0\]': MemoryStore field 'spread': not a tensor spread: 'splat'"):
        parse_module('module {memory.stores = [["x", "input", "splat", ["x"]]]} {\n}\n')
    with pytest.raises(ParseError, match=r"memory.tensors\[0\].*MemoryTensor field 'axis' expects int"):
        parse_module('module {memory.tensors = [["t", "x", "a", 0, 0]]} {\n}\n')
    with pytest.raises(ParseError, match=r"spmd.args\[0\].*not a tensor spread: 'split'"):
        parse_module('module {spmd.args = ["split"]} {\n}\n')
    with pytest.raises(ParseError, match=r"memory.bytes.*memory totals are written"):
        parse_module('module {memory.bytes = [["weights", 1]]} {\n}\n')


@pytest.mark.parametrize("name, value, message", [
    ("memory.stores", (("x", "input", "replicated", ("x",)),),  # the text form, not records
     r"'memory.stores' expects a list of MemoryStore, got \[\[\"x\", \"input\""),
    ("memory.stores", (MemoryStore(store="x", kind="input", spread="replicated", sources=("x",)),),
     r"memory.stores\[0\]': MemoryStore field 'spread' expects a Spread, got 'replicated'"),
    ("memory.stores", (MemoryStore(store="x", kind="input", spread=Spread(), sources="x"),),
     r"memory.stores\[0\]': MemoryStore field 'sources' expects strs, got 'x'"),
    ("spmd.outputs", (Spread(axis=-1, blocks=(2,)),), r"spmd.outputs\[0\]': .* reads back as another value"),
    ("memory.tensors", "t", r"memory.tensors' expects a list of MemoryTensor"),
    ("spmd.args", ("replicated",), r"attribute 'spmd.args' expects a list of Spread"),
    ("memory.bytes", (("weights", 1),), r"memory.bytes': memory totals are written"),
    ("sockets", "2", r"attribute 'sockets' expects int"),
    ("memory.inputs", ("x", 1), r"attribute 'memory.inputs' expects str, got 1"),
])
def test_the_verifier_names_a_module_attribute_of_the_wrong_shape(name, value, message):
    with pytest.raises(VerifyError, match=r"^module .*" + message):
        verify_module(_module(**{name: value}))


def test_undeclared_module_attributes_stay_free_form():
    m = _module(name="gpt2", notes=(("a", 1), ("b", 2.5)))
    verify_module(m)
    assert parse_module(print_module(m)).attrs == m.attrs
