"""The master engine on real music (fluidsynth renders of Bach chorales).

Loudness and true peak are judged by libebur128 (pyebur128) directly.
"""

import json

import numpy as np
import pytest

from bridge.core.engine import Audio, RunContext
from bridge.core.errors import Cancelled, InvalidArgument, MediaError
from bridge.engines.master import MasterEngine
from tests import loudness
from tests.music import bach, cache_dir, have_renderer, loop_to

pytestmark = pytest.mark.skipif(not have_renderer(), reason="needs fluidsynth + FluidR3_GM")

SECONDS = 20


@pytest.fixture(scope="session")
def music(tmp_path_factory):
    return cache_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def engine():
    return MasterEngine()


ebur128 = loudness.measure_array  # straight from libebur128


def to_lufs(x, rate, lufs):
    return x * 10 ** ((lufs - ebur128(x, rate)[0]) / 20)


def master(engine, x, rate, reference=None, **params):
    inputs = {"audio": Audio(x, rate, name="clip")}
    if reference is not None:
        inputs["reference"] = Audio(*reference)
    result = engine.run(None, inputs, engine.validate(params), RunContext())
    assert len(result.outputs) == 1 and result.outputs[0].kind == "mastered"
    return result.outputs[0].audio, result.report


def check_master(x, rate, out, report, target, ceiling):
    assert out.sample_rate == rate
    assert out.samples.shape == x.shape  # exact frames, same channels
    lufs, peak = ebur128(out.samples, rate)
    assert abs(lufs - target) <= 0.1, (lufs, target)
    assert peak <= ceiling, (peak, ceiling)
    # Not clipped garbage: still the same music.
    assert np.corrcoef(x.ravel(), out.samples.ravel())[0, 1] > 0.9
    assert report["after"]["integrated_lufs"] == pytest.approx(lufs, abs=0.01)
    json.dumps(report)


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("preset,target,ceiling", [("streaming", -14, -1), ("ebu-r128", -23, -1)])
def test_presets_hit_target_and_ceiling(music, engine, rate, channels, preset, target, ceiling):
    x, rate = bach(music, rate, channels, SECONDS)
    out, report = master(engine, x, rate, preset=preset)
    check_master(x, rate, out, report, target, ceiling)
    assert report["target_lufs"] == target and report["ceiling_dbtp"] == ceiling
    assert report["preset"] == preset


@pytest.mark.parametrize("rate", [44100, 96000])
def test_quiet_input_gets_gain(music, engine, rate):
    x, rate = bach(music, rate, 2, SECONDS)
    quiet = to_lufs(x, rate, -50.0)
    out, report = master(engine, quiet, rate, preset="streaming")
    check_master(quiet, rate, out, report, -14, -1)
    assert report["gain_db"] > 30


@pytest.mark.parametrize("rate", [48000, 96000])
def test_hot_input_is_limited_hard(music, engine, rate):
    x, rate = bach(music, rate, 2, SECONDS)
    hot = x * 10 ** (18 / 20)  # peaks far over 0 dBFS (float)
    out, report = master(engine, hot, rate, lufs=-9.0, ceiling=-1.0)
    check_master(hot, rate, out, report, -9, -1)
    assert report["before"]["true_peak_dbtp"] > 3
    assert report["limiter"]["max_reduction_db"] > 6


def test_atsc_and_apple_presets(music, engine):
    x, rate = bach(music, 48000, 2, SECONDS)
    for preset, target, ceiling in (("apple", -16, -1), ("atsc-a85", -24, -2)):
        out, report = master(engine, x, rate, preset=preset)
        check_master(x, rate, out, report, target, ceiling)


def band_db(x, rate, lo, hi):
    spectrum = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1 / rate)
    return 10 * np.log10(spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum())


def test_eq_and_glue_change_the_sound_but_keep_the_music(music, engine):
    x, rate = bach(music, 44100, 2, SECONDS)
    plain, _ = master(engine, x, rate, eq=False)
    shaped, report = master(engine, x, rate, eq=True)
    corr = np.corrcoef(plain.samples.ravel(), shaped.samples.ravel())[0, 1]
    assert 0.95 < corr < 0.9999  # not a no-op, not a wreck
    # High shelf up, rumble gone, loudness still on target.
    assert band_db(shaped.samples, rate, 8000, 16000) > band_db(plain.samples, rate, 8000, 16000) + 0.5
    assert band_db(shaped.samples, rate, 0, 20) < band_db(plain.samples, rate, 0, 20)
    assert report["after"]["loudness_range_lu"] <= report["before"]["loudness_range_lu"]


def test_reference_brightens_and_sets_loudness(music, engine):
    import pedalboard as pb

    x, rate = bach(music, 44100, 2, SECONDS)
    ref, ref_rate = bach(music, 48000, 2, SECONDS)  # another rate: resampled
    bright = pb.Pedalboard([pb.HighShelfFilter(cutoff_frequency_hz=3000, gain_db=9.0)])
    ref = bright(ref.T.astype(np.float32), ref_rate).T.astype(np.float64)
    ref = to_lufs(ref, ref_rate, -17.5)
    plain, _ = master(engine, x, rate)
    matched, report = master(engine, x, rate, reference=(ref, ref_rate))
    check_master(x, rate, matched, report, -17.5, -1)
    gain = band_db(matched.samples, rate, 4000, 16000) - band_db(plain.samples, rate, 4000, 16000)
    assert gain > 3.0  # measurably brighter
    assert report["reference"]["integrated_lufs"] == pytest.approx(-17.5, abs=0.01)
    assert report["reference"]["resampled_to"] == rate
    assert report["reference"]["match"]["high_db"] > 3.0
    # An explicit lufs wins over the reference's loudness.
    out, report = master(engine, x, rate, reference=(ref, ref_rate), lufs=-12.0)
    check_master(x, rate, out, report, -12, -1)


def test_mono_stays_mono_and_float32_stays_float32(music, engine):
    x, rate = bach(music, 48000, 1, 8)
    out, _ = master(engine, x.astype(np.float32), rate)
    assert out.samples.shape == x.shape and out.samples.dtype == np.float32
    lufs, peak = ebur128(out.samples, rate)
    assert abs(lufs + 14) <= 0.1 and peak <= -1


def test_surround_6_channels(music, engine):
    x, rate = bach(music, 48000, 6, 8)
    out, report = master(engine, x, rate)
    check_master(x, rate, out, report, -14, -1)


def test_odd_length_is_kept_exactly(music, engine):
    x, rate = bach(music, 44100, 2, 5)
    x = x[:220417]
    out, _ = master(engine, x, rate)
    assert out.samples.shape == (220417, 2)


def test_progress_stages_in_order(music, engine):
    x, rate = bach(music, 44100, 2, 5)
    events = []
    ctx = RunContext(progress=lambda f, s: events.append((f, s)))
    ref = (x[:, ::-1].copy(), rate)
    engine.run(None, {"audio": Audio(x, rate), "reference": Audio(*ref)}, engine.validate({}), ctx)
    stages = [s for _, s in events]
    order = ["analysing", "eq", "matching reference", "loudness", "limiting", "verifying"]
    assert [s for s in order if s in stages] == order
    firsts = [stages.index(s) for s in order]
    assert firsts == sorted(firsts)
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_cancel_is_honoured(music, engine):
    x, rate = bach(music, 44100, 2, 5)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2  # after a stage or two

    with pytest.raises(Cancelled):
        engine.run(None, {"audio": Audio(x, rate)}, engine.validate({}), RunContext(cancelled=cancelled))


def test_validate_resolves_presets_and_overrides(engine):
    values = engine.validate({"preset": "ebu-r128"})
    assert (values["preset"], values["target_lufs"], values["ceiling_dbtp"]) == ("ebu-r128", -23, -1)
    values = engine.validate({"preset": "atsc-a85", "lufs": -20, "ceiling": -3})
    assert (values["target_lufs"], values["ceiling_dbtp"]) == (-20, -3)
    with pytest.raises(InvalidArgument, match="allowed: streaming, apple, ebu-r128, atsc-a85"):
        engine.validate({"preset": "loud"})
    with pytest.raises(InvalidArgument, match="allowed range"):
        engine.validate({"ceiling": 1.0})
    with pytest.raises(InvalidArgument, match="under the .* ceiling"):
        engine.validate({"lufs": -5, "ceiling": -6})
    params = {p.name: p for p in engine.params}
    assert params["lufs"].unit == "LUFS" and params["ceiling"].unit == "dBTP"


RATE = 48000


@pytest.mark.parametrize("what,samples,message", [
    ("silence", np.zeros((RATE * 3, 2)), "digital silence"),
    ("gated", np.full((RATE * 3, 2), 1e-5) * np.sign(np.sin(np.arange(RATE * 3) / 7))[:, None],
     "absolute gate"),
    ("short", 0.1 * np.sin(np.arange(int(RATE * 0.3)) / 5)[:, None].repeat(2, 1), "0.300 s long"),
])
def test_undefined_loudness_is_a_media_error(engine, what, samples, message):
    with pytest.raises(MediaError, match=message) as info:
        master(engine, samples, RATE)
    assert "infinite gain" in info.value.message


def test_non_finite_samples_name_the_frame(music, engine):
    x, rate = bach(music, 44100, 2, 3)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[54321, 0] = bad
        with pytest.raises(MediaError, match="frame 54321"):
            master(engine, y, rate)


def test_too_many_channels(engine):
    with pytest.raises(MediaError, match="9 channels"):
        master(engine, np.zeros((RATE, 9)), RATE)


def test_bad_reference_is_named(music, engine):
    x, rate = bach(music, 44100, 2, 3)
    with pytest.raises(MediaError, match="reference has no defined integrated loudness"):
        master(engine, x, rate, reference=(np.zeros((rate * 2, 2)), rate))
    ref = x.copy()
    ref[10, 1] = np.nan
    with pytest.raises(MediaError, match="reference has a non-finite sample .* frame 10"):
        master(engine, x, rate, reference=(ref, rate))


def test_looped_long_input_keeps_length(music, engine):
    x, rate = bach(music, 44100, 2, None)
    long = loop_to(x, x.shape[0] * 2 + 17)
    out, report = master(engine, long, rate, eq=False)
    check_master(long, rate, out, report, -14, -1)


def test_verify_pulls_an_overshoot_under_the_ceiling(music):
    from bridge.engines.master import _verify

    x, rate = bach(music, 44100, 2, 5)
    hot = x * (10 ** (0.5 / 20) / np.abs(x).max())  # sample peak +0.5 dBFS
    out, after, cut = _verify(hot, rate, -1.0)
    assert cut
    assert ebur128(out, rate)[1] <= -1.0
    assert after.true_peak_dbtp <= -1.0
    assert out.shape == hot.shape


# -- chunked == whole -------------------------------------------------------------------------
# Every stage walks the file in chunks of bridge.dsp.chunks.CHUNK_FRAMES; one chunk as long as
# the file is the whole-array computation. Odd chunk sizes put boundaries inside limiter blocks,
# look-ahead ramps, Welch segments and the FIR's reach.

def run_chunked(monkeypatch, chunk, engine, x, rate, reference=None, **params):
    from bridge.dsp import chunks

    monkeypatch.setattr(chunks, "CHUNK_FRAMES", chunk)
    return master(engine, x, rate, reference, **params)


@pytest.mark.parametrize("eq,with_reference,dtype", [
    (True, True, np.float64), (False, True, np.float32), (True, False, np.float32),
    (False, False, np.float64)])
def test_chunked_master_equals_one_chunk(music, engine, monkeypatch, eq, with_reference, dtype):
    x, rate = bach(music, 44100, 2, SECONDS)
    x = (x * 10 ** (12 / 20)).astype(dtype)  # hot: the limiter works hard
    reference = None
    if with_reference:
        ref, ref_rate = bach(music, 48000, 2, 12)
        reference = (ref[:, ::-1].copy(), ref_rate)
    whole, whole_report = run_chunked(monkeypatch, 1 << 30, engine, x, rate, reference, eq=eq)
    parts, parts_report = run_chunked(monkeypatch, 9001, engine, x, rate, reference, eq=eq)
    assert parts.samples.dtype == whole.samples.dtype == dtype
    assert np.abs(parts.samples - whole.samples).max() < 1e-5
    assert parts_report["limiter"]["passes"] == whole_report["limiter"]["passes"]
    assert parts_report["limiter"]["max_reduction_db"] == whole_report["limiter"]["max_reduction_db"]
    for key in ("integrated_lufs", "true_peak_dbtp"):
        assert parts_report["after"][key] == pytest.approx(whole_report["after"][key], abs=2e-3)
    check_master(x, rate, parts, parts_report, parts_report["target_lufs"], -1)  # a reference sets it


def test_pedalboard_across_chunks_equals_the_whole_file(music, monkeypatch):
    import pedalboard as pb

    from bridge.dsp import chunks
    from bridge.engines.master import GLUE_LEVEL_LUFS, _board, _eq_and_glue

    x, rate = bach(music, 48000, 2, SECONDS)
    x = x * np.linspace(0.2, 3.0, x.shape[0])[:, None]  # the compressor's state matters
    lufs = ebur128(x, rate)[0]
    pre = 10 ** ((GLUE_LEVEL_LUFS - lufs) / 20)
    board = _board(rate, 1.0)
    assert isinstance(board[-1], pb.Compressor)
    whole = board(np.ascontiguousarray((x * pre).T, dtype=np.float32), float(rate), reset=True)
    expected = (whole.T.astype(np.float64) / pre).astype(np.float32)
    monkeypatch.setattr(chunks, "CHUNK_FRAMES", 7777)
    got = _eq_and_glue(x, rate, lufs, 1.0, RunContext())
    np.testing.assert_array_equal(got, expected)  # reset=False carries every filter's state
