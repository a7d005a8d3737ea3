"""A real daemon per test module with ffmpeg-made media under its media root."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import running_daemon
from tests.hosts.otio.media import make_media

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def served():
    """``served.media`` (the daemon's media root), ``served.files`` (Media), ``served.otio(...)``."""
    with running_daemon() as daemon:
        daemon.files = make_media(daemon.media / "src")
        daemon.otio = lambda *args: run_otio(daemon, *args)
        yield daemon


def run_otio(daemon, *args) -> tuple[int, dict]:
    """`studio-bridge otio ARGS --json` through the real CLI; (exit code, its JSON)."""
    result = daemon.cli("otio", *map(str, args), "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"not one JSON object on stdout: {result.stdout!r}\n{result.stderr}") from None
