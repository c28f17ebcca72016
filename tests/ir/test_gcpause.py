"""paused_gc: the cyclic collector is off inside, and back as it was after (errors included)."""

import gc

import pytest

from rduflow.ir.gcpause import paused_gc


def test_paused_inside_and_restored_after_nesting_and_errors():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not turn it back on early
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_caller_who_paused_it_keeps_it_paused():
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
