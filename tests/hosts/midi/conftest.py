"""A private JACK server (dummy driver) per test that asks for one."""

from __future__ import annotations

import pytest

from tests.hosts.midi.jack import jack_server


@pytest.fixture
def jack():
    with jack_server() as name:
        yield name
