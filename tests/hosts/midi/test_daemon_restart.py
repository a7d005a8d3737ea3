"""A pad's job when the daemon restarts under it: the real daemon, the real client."""

from __future__ import annotations

import time

from hosts.midi.clock import ClockEstimator
from hosts.midi.controller import Controller
from hosts.midi.leds import Leds
from hosts.midi.mapping import parse_mapping
from tests.conftest import running_daemon, write_tone


def test_a_daemon_restarted_mid_job_is_said_and_the_pad_goes_dark(tmp_path):
    sent = []
    leds = Leds(sent.append, "generic", blink_seconds=1.0)
    with running_daemon(tmp_path, extra=["--grace", "0.5"]) as daemon:
        song = write_tone(daemon.media / "long.wav", seconds=60.0)
        mapping = parse_mapping(f'[[binding]]\ntype = "note"\nchannel = 1\nnumber = 36\naction = "separate"\n'
                                f'model = "hpss"\ninput = "{song}"\nout = "{daemon.media / "stems"}"\n')
        said = []
        with daemon.client(timeout=10) as client:
            controller = Controller(mapping, client, ClockEstimator(), leds, said.append)
            record = controller.trigger(mapping.bindings[0])
            deadline = time.monotonic() + 30
            while record.state != "running":
                assert time.monotonic() < deadline, (record.state, said)
                time.sleep(0.02)
            daemon.stop()
            daemon.start()
            assert controller.wait(30), "the job thread hangs after the daemon came back"
    assert record.state in ("interrupted", "failed"), record.to_dict()
    (line,) = [text for text in said if text.startswith(f"job {record.job_id or '-'} ")]
    assert record.state in line and "(separate)" in line, said
    assert not (daemon.media / "stems").exists() or not any((daemon.media / "stems").iterdir())
    assert sent[-1].type == "note_on" and sent[-1].velocity == 0  # dark: an error, not a blink
