"""hosts/midi/ports.py on a real JACK server: how coarse the input's times are."""

from __future__ import annotations

import pytest

from tests.hosts.midi.jack import jack_backend


def test_a_jack_input_knows_its_times_are_good_to_one_period(jack):
    jack_backend()  # skips without mido / a JACK-enabled python-rtmidi
    from hosts.midi.ports import Endpoint, jack_period, rtmidi_api

    assert jack_period() == pytest.approx(256 / 48000)  # jack_server(): -r 48000 -p 256
    inp = Endpoint(rtmidi_api("jack"), "input", virtual="probe-test").open()
    try:
        assert inp.resolution == pytest.approx(256 / 48000)
    finally:
        inp.close()
    out = Endpoint(rtmidi_api("jack"), "output", virtual="probe-test").open()
    try:
        assert out.resolution is None  # outputs are not timed
    finally:
        out.close()
