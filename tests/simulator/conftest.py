"""Fixtures for the simulator tests."""

import pytest
from simhelpers import ROUND

from rduflow.compiler.target import load_arch


@pytest.fixture(scope="session")
def round_arch():
    return load_arch("sn40l", ROUND)
