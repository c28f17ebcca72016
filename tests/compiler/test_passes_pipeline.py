"""Pipeline text, pass options, the registry, and the pass manager's verification, printing and timing."""

import io
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

from rduflow.compiler.passes import (ALL, IRPrinter, ModulePass, PASSES, PassFailure, PassManager, PipelineError,
                                     available_passes, format_pipeline, format_timings, option, parse_pipeline)
from rduflow.ir import DType, Module, RduflowError, TensorType, parse_module


@dataclass(frozen=True)
class Knobs(ModulePass):
    """A pass with one option of every supported type (does nothing)."""

    name: ClassVar[str] = "knobs"
    count: int = option(1, "an int")
    ratio: float = 0.5
    verbose: bool = False
    label: str = "x"
    grid: tuple[int, int] = (1, 1)
    axes: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    seed: int | None = None

    def apply(self, module: Module, ctx) -> None:
        pass


@dataclass(frozen=True)
class NeedsOption(ModulePass):
    name: ClassVar[str] = "needs"
    level: int = option(doc="required")

    def apply(self, module, ctx):
        pass


@dataclass(frozen=True)
class BreakTypes(ModulePass):
    """Changes the first op's result type without changing the op: the verifier must catch it."""

    name: ClassVar[str] = "break-types"

    def apply(self, module, ctx):
        r = module.main.ops[1].results[0]
        r.type = r.type.with_dtype(DType.f16)


@dataclass(frozen=True)
class Refuse(ModulePass):
    name: ClassVar[str] = "refuse"

    def apply(self, module, ctx):
        raise RduflowError("the model has no attention layer")


@dataclass(frozen=True)
class Crash(ModulePass):
    name: ClassVar[str] = "crash"

    def apply(self, module, ctx):
        return {}["missing"]


@pytest.fixture(autouse=True)
def test_passes(monkeypatch):
    for cls in (Knobs, NeedsOption, BreakTypes, Refuse, Crash):
        monkeypatch.setitem(PASSES, cls.name, f"{__name__}:{cls.__name__}")


def module():
    return parse_module("""module { graph @main(%x: f32[4]) -> (f32[4]) {
        %z = constant() {value = dense<f32[] [0.0]>} : f32[]
        %a = add(%x, %z) : f32[4]
        %b = exp(%a) : f32[4]
        %c = exp(%a) : f32[4]
        %r = add(%b, %c) : f32[4]
        return %r as "out" } }""")


# -- text --------------------------------------------------------------------------------------------------
def test_every_option_type_parses():
    (p,) = parse_pipeline('knobs{count=24, ratio=1e-3, verbose, label="a,b}", grid=8x8, axes=[0,2,-1], '
                          'names=[q, "k v"], seed=none}')
    assert p == Knobs(count=24, ratio=1e-3, verbose=True, label="a,b}", grid=(8, 8), axes=(0, 2, -1),
                      names=("q", "k v"), seed=None)
    assert parse_pipeline("knobs{verbose=false,grid=[3,4],axes=5,seed=7}") == [
        Knobs(verbose=False, grid=(3, 4), axes=(5,), seed=7)]


@pytest.mark.parametrize("text", [
    "", "cse", "canonicalize,cse,dce", "knobs{count=3,ratio=0.25,verbose=true,label=\"x y\"}",
    "knobs{grid=[8,8],axes=[],names=[\"a,b\",c],seed=3},canonicalize{fold-limit=0}",
    "knobs{label=\"none\"}", "knobs{label=\"q\\\"uote\"}", "knobs{label=\"line\\nbreak, tab\\t\"}",
])
def test_format_parses_back_to_the_same_passes(text):
    passes = parse_pipeline(text)
    assert parse_pipeline(format_pipeline(passes)) == passes


def test_a_string_with_a_newline_survives_formatting():
    (p,) = parse_pipeline(format_pipeline([Knobs(label="two\nlines, {braces}")]))
    assert p.label == "two\nlines, {braces}"


def test_defaults_are_left_out_when_formatting():
    assert format_pipeline(parse_pipeline("knobs{count=1},cse")) == "knobs,cse"
    assert format_pipeline(parse_pipeline(" canonicalize { fold-limit = 9 } , dce ")) == "canonicalize{fold-limit=9},dce"


@pytest.mark.parametrize("text, message", [
    ("no-such-pass", r"unknown pass 'no-such-pass' \(available: .*canonicalize, .*crash, .*cse, .*dce"),
    ("canonicalize{bogus=1}", r"pass 'canonicalize' has no option 'bogus' \(options: fold-limit \(int\), max-sweeps"),
    ("cse{x=1}", r"pass 'cse' has no option 'x' \(it takes no options\)"),
    ("knobs{count=abc}", r"pass 'knobs': option 'count' expects an int, got 'abc'"),
    ("knobs{ratio=fast}", r"option 'ratio' expects a float, got 'fast'"),
    ("knobs{verbose=maybe}", r"option 'verbose' expects true or false, got 'maybe'"),
    ("knobs{grid=8x8x8}", r"option 'grid' expects \(int, int\), got 3 value"),
    ("knobs{count}", r"option 'count' expects int, got no value"),
    ("knobs{count=[1]}", r"option 'count' expects int, got a list"),
    ("knobs{count=1,count=2}", r"option 'count' is given twice"),
    ("needs", r"pass 'needs' needs option\(s\) level"),
    ("canonicalize{fold-limit=-5}", r"fold-limit must be >= 0"),
    ("cse,,dce", r"bad pipeline 'cse,,dce': unexpected ',' \(expected a name\) at column 5"),
    ("cse{", r"unexpected end"),
    ("knobs{count=}", r"unexpected '}' .*at column 13"),
    ("knobs{label=\"open}", r"bad pipeline"),
    ("knobs{label=\"\\x\"}", r"bad pipeline .*escape"),
])
def test_pipeline_errors_name_the_problem(text, message):
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text)


def test_registry_entries_import_and_match_their_names():
    builtin = {name for name, target in PASSES.items() if target.startswith(".")}
    assert {"canonicalize", "cse", "dce"} <= builtin
    for name, cls in available_passes().items():
        if name not in builtin:
            continue
        assert cls.name == name
        assert issubclass(cls, ModulePass)
        assert cls.summary(), f"pass {name} needs a docstring (its first line is the summary)"
        cls()  # every built-in pass can be built with default options


# -- manager -----------------------------------------------------------------------------------------------
def test_verifier_runs_after_every_pass_and_names_the_pass():
    with pytest.raises(PassFailure, match=r"IR is invalid after pass 'break-types' \(pipeline so far: "
                                          r"cse,break-types\): .*differ from inferred") as e:
        PassManager(parse_pipeline("cse,break-types,dce")).run(module())
    assert e.value.pass_name == "break-types" and e.value.pipeline == "cse,break-types"
    PassManager(parse_pipeline("cse,break-types,dce"), verify_each=False).run(module())


def test_failing_and_crashing_passes_are_reported_with_the_pipeline():
    with pytest.raises(PassFailure, match=r"pass 'refuse' failed \(pipeline so far: dce,refuse\): "
                                          r"the model has no attention layer"):
        PassManager(parse_pipeline("dce,refuse")).run(module())
    with pytest.raises(PassFailure, match=r"pass 'crash' crashed \(pipeline so far: crash\): KeyError"):
        PassManager(parse_pipeline("crash")).run(module())


def test_invalid_input_is_blamed_on_the_input():
    m = module()
    m.main.ops[1].results[0].type = TensorType([5], "f32")
    with pytest.raises(PassFailure, match=r"the input IR is invalid, before any pass: .*'add'"):
        PassManager(parse_pipeline("cse")).run(m)


def dumps(text: str) -> list[tuple[str, str]]:
    """(header, module text) for each dump; each module text must parse back."""
    parts = re.split(r"^// ----- (.*) ----- //\n", text, flags=re.M)
    out = list(zip(parts[1::2], parts[2::2]))
    for _, body in out:
        parse_module(body)
    return out


def test_print_ir_after_all_and_after_named_passes():
    s = io.StringIO()
    PassManager(parse_pipeline("canonicalize,cse,dce"), instruments=[IRPrinter(after=ALL, stream=s)]).run(module())
    assert [h for h, _ in dumps(s.getvalue())] == [
        "IR after canonicalize (pass 1)", "IR after cse (pass 2)", "IR after dce (pass 3)"]
    s = io.StringIO()
    PassManager(parse_pipeline("canonicalize,cse,dce"),
                instruments=[IRPrinter(after={"cse", "dce"}, stream=s)]).run(module())
    (h1, cse_ir), (h2, _) = dumps(s.getvalue())
    assert (h1, h2) == ("IR after cse (pass 2)", "IR after dce (pass 3)")
    assert cse_ir.count("exp(") == 1 and "constant" not in cse_ir


def test_print_ir_before_all():
    s = io.StringIO()
    PassManager(parse_pipeline("cse,knobs{count=2}"), instruments=[IRPrinter(before=ALL, stream=s)]).run(module())
    (h1, ir1), (h2, ir2) = dumps(s.getvalue())
    assert (h1, h2) == ("IR before cse (pass 1)", "IR before knobs{count=2} (pass 2)")
    assert ir1.count("exp(") == 2 and ir2.count("exp(") == 1


def test_print_ir_after_change_skips_passes_that_changed_nothing():
    s = io.StringIO()
    PassManager(parse_pipeline("knobs,cse,cse,canonicalize"),
                instruments=[IRPrinter(after=ALL, only_changed=True, stream=s)]).run(module())
    assert [h for h, _ in dumps(s.getvalue())] == ["IR after cse (pass 2)", "IR after canonicalize (pass 4)"]


def test_print_ir_after_shows_the_ir_that_failed_verification():
    s = io.StringIO()
    with pytest.raises(PassFailure):
        PassManager(parse_pipeline("break-types"), instruments=[IRPrinter(after=ALL, stream=s)]).run(module())
    assert "IR after break-types" in s.getvalue() and "f16[4]" in s.getvalue()


def test_timing_table_lists_every_pass():
    records = PassManager(parse_pipeline("canonicalize{fold-limit=8},cse,dce")).run(module())
    assert [r.spec for r in records] == ["canonicalize{fold-limit=8}", "cse", "dce"]
    assert all(r.seconds >= 0 and r.verify_seconds >= 0 for r in records)
    table = format_timings(records)
    for name in ("canonicalize{fold-limit=8}", "cse", "dce", "(verifier, after every pass)", "Total"):
        assert name in table
