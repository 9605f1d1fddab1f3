"""Fixtures of the engine tests (helpers live in engine_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from engine_helpers import HERE, TEST_COMPONENTS, Recorder

from vfp import ComponentKind, ComponentSpec
from vfp._plugins import PluginHost, get_host, reset_host


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A Recorder registered on the process-wide plugin host for one test."""
    host = get_host()
    rec = Recorder()
    host.register_object(rec, "test-recorder")
    yield rec
    host.unregister_object(rec)


@pytest.fixture
def two_part_host() -> Iterator[PluginHost]:
    """The installed plugins plus a test-local trainer with two model components (``encoder``, ``head``)."""
    sys.path.insert(0, str(HERE))
    from engine_test_components import TwoPartTrainerConfig

    host = PluginHost()
    host.registry.add(
        ComponentSpec(ComponentKind.TRAINER, "two_part", TwoPartTrainerConfig, f"{TEST_COMPONENTS}:TwoPartTrainer")
    )
    reset_host(host)
    yield host
    reset_host()
    sys.path.remove(str(HERE))
