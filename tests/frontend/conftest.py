"""Fixtures: tiny Hugging Face models exported once per session."""

from __future__ import annotations

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

