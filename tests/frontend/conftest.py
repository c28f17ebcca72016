"""Fixtures: tiny Hugging Face models exported once per session, and ORT comparison helpers."""

from __future__ import annotations

import numpy as np
import pytest

from hf_models import export


@pytest.fixture(scope="session")
def hf_export(tmp_path_factory):
    """``hf_export(family, mode, exporter, opset=18)`` -> Export, exported once per session."""
    folder = tmp_path_factory.mktemp("hf_exports")
    cache = {}

    def get(family: str, mode: str, exporter: str, opset: int = 18):
        key = (family, mode, exporter, opset)
        if key not in cache:
            cache[key] = export(family, mode, exporter, folder, opset)
        return cache[key]

    return get


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: the error relative to the output's scale."""
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    scale = max(float(np.abs(want).max()) if want.size else 0.0, 1e-6)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / scale if want.size else 0.0
