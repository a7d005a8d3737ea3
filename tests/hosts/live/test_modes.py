"""Trigger modes to daemon requests."""

from __future__ import annotations

import pytest

from hosts.live.modes import build_request, parse_mode


def test_modes():
    assert parse_mode("separate") == ("separate", "")
    assert parse_mode("separate:drums,bass") == ("separate", "drums,bass")
    assert parse_mode("drums") == ("separate", "drums")
    assert parse_mode("continue") == ("continue", "")
    with pytest.raises(ValueError, match="modes: separate"):
        parse_mode("shuffle:x")


def test_requests_carry_the_clock():
    r = build_request("continue", "/m/bars.wav", 123.04567, 4, 4, {"prompt": "funk", "loop": True})
    assert r.engine == "generate" and r.inputs == {"continue": "/m/bars.wav"}
    assert r.params == {"prompt": "funk", "bpm": 123.046, "bars": 4, "beats_per_bar": 4, "loop": True}
    r = build_request("melody:strings", "/m/bars.wav", 90, 2, 3, {"generate_model": "musicgen-melody"})
    assert r.inputs == {"melody": "/m/bars.wav"} and r.model == "musicgen-melody"
    assert r.params["prompt"] == "strings"
    r = build_request("drums", "/m/bars.wav", 90, 2, 4, {"separate_model": "htdemucs"})
    assert (r.engine, r.params, r.model, r.stems) == ("separate", {"stems": "drums"}, "htdemucs", ("drums",))
    r = build_request("separate", "/m/bars.wav", 90, 2, 4, {"separate_model": "hpss", "stems": "percussive"})
    assert r.params == {"stems": "percussive"} and r.stems == ("percussive",)


def test_a_generation_without_a_prompt_is_refused_before_any_job():
    for mode in ("continue", "melody"):
        with pytest.raises(ValueError, match=f"{mode} needs a prompt"):
            build_request(mode, "/m/bars.wav", 120, 2, 4, {})
