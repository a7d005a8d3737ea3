"""A target the material cannot reach fails plainly, unless ``best_effort`` is asked for.

DC-only input is the textbook case: the loudness meter's K-weighting does not hear a
constant level, but it takes up peak headroom, so no gain under the ceiling reaches
-14 LUFS. Judged by libebur128 (pyebur128) directly, like tests/engines/test_master.py.
"""

import numpy as np
import pytest
import soundfile

from bridge.core.engine import Audio, RunContext
from bridge.core.errors import MediaError
from bridge.engines.master import MasterEngine
from tests import loudness
from tests.conftest import write_tone

RATE = 48000


ebur128 = loudness.measure_array  # straight from libebur128


@pytest.fixture(scope="module")
def engine():
    return MasterEngine()


def master(engine, x, **params):
    result = engine.run(None, {"audio": Audio(x, RATE)}, engine.validate(params), RunContext())
    return result.outputs[0].audio.samples, result.report


def dc(seconds=10.0, level=0.1):
    return np.full((int(RATE * seconds), 2), level, dtype=np.float32)


@pytest.mark.parametrize("eq", [True, False])
def test_dc_only_stereo_fails_and_says_why(engine, eq):
    with pytest.raises(MediaError) as info:
        master(engine, dc(), eq=eq)
    message = info.value.message
    assert message.startswith("audio did NOT reach the -14 LUFS target")
    assert "LU short of it" in message and "at most 0.1 LU" in message
    assert "DC offset" in message and "Remove the DC offset" in message
    assert "Nothing was written" in message
    assert "best_effort=true" in message
    shortfall = float(message.split(" LU short")[0].rsplit(" ", 1)[1])
    assert shortfall > 5


def test_sparse_clicks_fail_as_too_dynamic(engine):
    x = np.zeros((RATE * 8, 2), np.float32)
    x[:: RATE // 4] = 0.5  # four clicks a second, nothing between
    with pytest.raises(MediaError, match="did NOT reach") as info:
        master(engine, x)
    message = info.value.message
    assert "too dynamic" in message and "DC offset" not in message
    assert "Compress it first, raise 'ceiling'" in message and "best_effort=true" in message


def test_dc_with_best_effort_delivers_the_loudest_result_and_says_so(engine):
    x = dc()
    out, report = master(engine, x, best_effort=True)
    assert out.shape == x.shape and out.dtype == np.float32
    lufs, peak = ebur128(out, RATE)
    assert lufs < -14 - 0.1 and peak <= -1.0  # short of the target, ceiling held
    assert report["after"]["integrated_lufs"] == pytest.approx(lufs, abs=0.01)
    missed = [w for w in report["warnings"] if w.startswith("target not reached")]
    assert len(missed) == 1 and "DC offset" in missed[0] and "best_effort" in missed[0]


def test_a_reachable_target_is_no_error_and_no_warning(engine):
    t = np.arange(RATE * 6) / RATE
    tone = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    x = np.stack([tone, 0.9 * tone], axis=1) + 0.02  # a small DC offset does not stop it
    for best_effort in (False, True):
        out, report = master(engine, x, best_effort=best_effort)
        lufs, peak = ebur128(out, RATE)
        assert abs(lufs + 14) <= 0.1 and peak <= -1.0
        assert "warnings" not in report


def test_best_effort_is_described_for_hosts(engine):
    param = next(p for p in engine.params if p.name == "best_effort")
    assert param.type == "bool" and param.default is False
    assert "instead of failing" in param.description
    assert engine.validate({})["best_effort"] is False


def test_daemon_fails_the_job_and_writes_nothing(daemon):
    src = daemon.media / "dc.wav"
    soundfile.write(src, dc(4.0), RATE, subtype="FLOAT")
    out = daemon.media / "out"
    with daemon.client(timeout=60) as client:
        job = client.run("master", {"audio": str(src)}, {}, str(out), no_cache=True)
        assert job["state"] == "failed" and job["outputs"] == [], job
        assert job["error"]["code"] == "bad_media"
        message = job["error"]["message"]
        assert f"audio '{src}' did NOT reach the -14 LUFS target" in message, message
        assert "Nothing was written" in message and "best_effort" in message
        assert not out.exists() or list(out.iterdir()) == []
        job = client.run("master", {"audio": str(src)}, {"best_effort": True}, str(out), no_cache=True)
        assert job["state"] == "succeeded", job
        assert any(w.startswith("target not reached") for w in job["report"]["warnings"])
        assert [p.name for p in out.iterdir()] == ["dc.master.mastered.wav"]
        good = write_tone(daemon.media / "tone.wav", seconds=3.0)
        job = client.run("master", {"audio": str(good)}, {}, str(out), no_cache=True)
        assert job["state"] == "succeeded" and "warnings" not in job["report"], job


def test_the_cli_says_the_same_and_takes_best_effort(daemon):
    import json

    src = daemon.media / "dc-cli.wav"
    soundfile.write(src, dc(4.0), RATE, subtype="FLOAT")
    out = daemon.media / "cli-out"
    failed = daemon.cli("master", str(src), "--out", str(out), "--json", "--no-cache")
    assert failed.returncode == 1 and "--best-effort" in json.loads(failed.stdout)["error"]["message"]
    assert not out.exists() or list(out.iterdir()) == []
    done = daemon.cli("master", str(src), "--out", str(out), "--json", "--no-cache", "--best-effort")
    assert done.returncode == 0, done.stdout
    assert [p.name for p in out.iterdir()] == ["dc-cli.master.mastered.wav"]
