"""Shared fixtures: plugin hosts built from explicit entry points, and a clean process-wide host."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from vfp_test_support import Problems, config_problems

from vfp._plugins import reset_host


@pytest.fixture(autouse=True)
def _fresh_plugin_host() -> Iterator[None]:
    """Every test starts with no cached plugin host, so environment changes take effect."""
    reset_host()
    yield
    reset_host()


@pytest.fixture
def problems_of() -> Callable[..., Problems]:
    """``problems_of(path, *overrides)``: the config problems by key path, ``{key: (line, message)}``."""
    return config_problems
