"""Speculative decoding: the expected-tokens formula and its option syntax."""

import pytest
from rduflow.inference import LlmSimError, SpecDecode


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_tokens_per_step_is_the_truncated_geometric_series(k):
    for a in (0.0, 0.3, 0.8, 0.99, 1.0):
        s = SpecDecode("d", k, a)
        assert s.tokens_per_step == pytest.approx(sum(a ** i for i in range(k + 1)))
    assert SpecDecode("d", k, 0.0).tokens_per_step == 1.0
    assert SpecDecode("d", k, 1.0).tokens_per_step == k + 1


def test_parse():
    s = SpecDecode.parse("llama-3.2-1b,k=4,accept=0.8")
    assert (s.draft, s.k, s.accept) == ("llama-3.2-1b", 4, 0.8)
    assert SpecDecode.parse(" d , accept=0.5 , k=2 ") == SpecDecode("d", 2, 0.5)


@pytest.mark.parametrize("text", ["llama", "d,k=4", "d,k=x,accept=0.5", "d,k=0,accept=0.5", "d,k=2,accept=1.5",
                                  "d,k=2,k=3", ",k=2,accept=0.5", "d,k=2,accept=0.5,x=1"])
def test_parse_errors_name_the_option(text):
    with pytest.raises(LlmSimError, match="--spec-decode"):
        SpecDecode.parse(text)
