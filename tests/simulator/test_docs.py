"""docs/simulator.md's complete example is a valid placed program that simulates."""

import re
from pathlib import Path

from rduflow.ir import parse_module, print_module, verify_module
from rduflow.simulator import simulate

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def test_the_documented_example_runs():
    (text,) = re.findall(r"```rdu\n(.*?)```", DOC.read_text(), flags=re.S)
    module = parse_module(text)
    verify_module(module)
    assert print_module(module) == text  # the doc shows the canonical printed form
    r = simulate(module, "sn40l")
    assert [(s.name, s.calls, s.looped) for s in r.sections] == [("embed", 1, False), ("decoder", 4, True)]
    assert r.sockets == 2 and r.tiers["socket"].bytes > 0
    assert r.resource("link 4,8>3,8").bytes == 4 * 2 * 2048  # the explicit route, once per call
