"""Blockwise resampling: the same samples as julius on the whole array, in bounded memory."""

import numpy as np
import pytest

from bridge.dsp import resample

julius = pytest.importorskip("julius")
torch = pytest.importorskip("torch")

# (old, new, block_seconds, seconds): small blocks so every case runs
# through many. 44100 -> 44000 reduces to 441 -> 440: each 5 ms block is
# rounded up to one 10 ms unit, the context is a whole unit, and julius
# rebuilds 440 filter phases per call, hence the shorter signal. (A pair with gcd 1 such as
# 44100 -> 44099 cannot be a reference at all: julius would build a
# 44099 x 44152 kernel bank, about 7.8 GB.)
PAIRS = [
    (48000, 44100, 0.1, 1.37),
    (44100, 48000, 0.1, 1.37),
    (8000, 44100, 0.1, 1.37),
    (44100, 8000, 0.2, 1.37),
    (22050, 44100, 0.05, 1.37),
    (44100, 44100, 0.07, 1.37),
    (44100, 44000, 0.005, 0.23),
    (11025, 16000, 0.5, 1.37),
]


@pytest.fixture(autouse=True)
def one_thread():
    # The machine is shared; one torch thread is plenty for these sizes.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def signal(frames, channels, rate, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    sine = 0.5 * np.sin(2 * np.pi * 440.0 * t)[:, None]
    return (sine + 0.3 * rng.standard_normal((frames, channels))).astype(np.float32)


def reference(x, old, new, out_frames):
    """julius on the whole array, full length, trimmed or zero-padded."""
    y = julius.resample_frac(torch.from_numpy(np.ascontiguousarray(x.T)), old, new, full=True)
    y = y.numpy().T
    out = np.zeros((out_frames, x.shape[1]), np.float32)
    keep = min(out_frames, y.shape[0])
    out[:keep] = y[:keep]
    return out


def run(x, old, new, out_frames, **kwargs):
    dst = np.full((out_frames, x.shape[1]), np.nan, np.float32)
    resample.resample_into(x, old, new, dst, **kwargs)
    return dst


class Spy:
    """Wraps julius.resample_frac, recording each input length."""

    def __init__(self, monkeypatch):
        self.lengths = []
        self._real = julius.resample_frac
        monkeypatch.setattr(julius, "resample_frac", self)

    def __call__(self, x, *args, **kwargs):
        self.lengths.append(x.shape[-1])
        return self._real(x, *args, **kwargs)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("old", "new", "block", "seconds"), PAIRS)
def test_equals_julius_on_the_whole_array(old, new, block, seconds, channels):
    frames = int(seconds * old) + 13  # a multiple of nothing in particular
    x = signal(frames, channels, old, seed=channels)
    out_frames = resample.resampled_length(frames, old, new)
    got = run(x, old, new, out_frames, block_seconds=block)
    want = reference(x, old, new, out_frames)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6


@pytest.mark.parametrize(("old", "new", "block", "seconds"), PAIRS)
def test_longer_dst_gets_the_full_length_then_zeros(old, new, block, seconds):
    frames = int(seconds / 2 * old) + 7
    x = signal(frames, 2, old)
    full = -(-frames * new // old)
    got = run(x, old, new, full + 500, block_seconds=block)
    want = reference(x, old, new, full + 500)
    assert np.abs(got[:full] - want[:full]).max() <= 1e-6
    assert np.all(got[full:] == 0)
    assert np.abs(got[full - 1]).max() > 0  # the last real sample is not dropped


def test_shorter_dst_is_the_start_of_the_result():
    x = signal(30011, 2, 48000)
    got = run(x, 48000, 44100, 1234, block_seconds=0.01)
    assert np.abs(got - reference(x, 48000, 44100, 1234)).max() <= 1e-6


@pytest.mark.parametrize(("old", "new"), [(44100, 48000), (48000, 44100), (44100, 44100)])
def test_short_input_is_all_edge(old, new):
    for frames in (1, 2, 5, 146, 147, 148):
        x = signal(frames, 2, old)
        out_frames = -(-frames * new // old)
        got = run(x, old, new, out_frames, block_seconds=0.001)
        assert np.abs(got - reference(x, old, new, out_frames)).max() <= 1e-6


def test_empty_input_gives_silence():
    dst = np.ones((10, 2), np.float32)
    resample.resample_into(np.zeros((0, 2), np.float32), 44100, 48000, dst)
    assert np.all(dst == 0)


def test_memmap_source_and_destination(tmp_path):
    old, new, frames = 44100, 48000, 3 * 44100 + 17
    x = signal(frames, 2, old)
    src = np.memmap(tmp_path / "src.f32", np.float32, "w+", shape=x.shape)
    src[:] = x
    src.flush()
    src = np.memmap(tmp_path / "src.f32", np.float32, "r", shape=x.shape)
    out_frames = resample.resampled_length(frames, old, new)
    dst = np.memmap(tmp_path / "dst.f32", np.float32, "w+", shape=(out_frames, 2))
    resample.resample_into(src, old, new, dst, block_seconds=0.25)
    assert np.abs(dst - reference(x, old, new, out_frames)).max() <= 1e-6


@pytest.mark.parametrize(("old", "new"), [(44100, 48000), (44100, 44100)])
def test_check_runs_between_blocks(monkeypatch, old, new):
    spy = Spy(monkeypatch)
    x = signal(old, 1, old)
    calls = []
    run(x, old, new, resample.resampled_length(old, old, new), block_seconds=0.1,
        check=lambda: calls.append(len(spy.lengths)))
    assert len(calls) == 9  # ten 0.1 s blocks
    if old != new:
        assert calls == list(range(1, 10))  # once after each block but the last


def test_an_exception_from_check_stops_the_work(monkeypatch):
    spy = Spy(monkeypatch)
    x = signal(44100, 2, 44100)
    dst = np.full((48000, 2), np.nan, np.float32)
    calls = []

    def cancel():
        calls.append(None)
        if len(calls) == 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt, match="cancelled"):
        resample.resample_into(x, 44100, 48000, dst, block_seconds=0.1, check=cancel)
    assert len(spy.lengths) == 3  # no block after the cancel
    assert not np.isnan(dst[: 3 * 4800]).any()
    assert np.isnan(dst[3 * 4800 :]).all()  # nothing beyond was written, not even zeros


def test_memory_is_bounded_by_the_block(monkeypatch, tmp_path):
    old, new, frames = 44100, 22050, 10 * 60 * 44100
    # A sparse file: zeros except for a little noise at the start.
    src = np.memmap(tmp_path / "long.f32", np.float32, "w+", shape=(frames, 1))
    src[: 20 * old] = signal(20 * old, 1, old)
    dst = np.memmap(tmp_path / "out.f32", np.float32, "w+",
                    shape=(resample.resampled_length(frames, old, new), 1))
    spy = Spy(monkeypatch)
    resample.resample_into(src, old, new, dst, block_seconds=5)
    assert len(spy.lengths) == 120
    assert max(spy.lengths) < 6 * old
    # Well inside the first 20 s, a 20 s whole-array run agrees.
    want = reference(np.asarray(src[: 20 * old]), old, new, 15 * new)
    assert np.abs(dst[: 15 * new] - want).max() <= 1e-6


@pytest.mark.parametrize(("old", "new"), [(0, 48000), (44100, 0), (-44100, 48000), (44100, -1)])
def test_non_positive_rates_are_refused(old, new):
    dst = np.zeros((10, 1), np.float32)
    with pytest.raises(ValueError, match="sample rates must be positive"):
        resample.resample_into(np.zeros((10, 1), np.float32), old, new, dst)
    with pytest.raises(ValueError, match="sample rates must be positive"):
        resample.resampled_length(10, old, new)


def test_bad_shapes_and_block_are_refused():
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="channels"):
        resample.resample_into(x, 44100, 48000, np.zeros((11, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(frames, channels\)"):
        resample.resample_into(x[:, 0], 44100, 48000, np.zeros(11, np.float32))
    with pytest.raises(ValueError, match="block_seconds"):
        resample.resample_into(x, 44100, 48000, np.zeros((11, 2), np.float32), block_seconds=0)


def test_resampled_length_is_julius_default():
    for frames in (1, 146, 147, 44100, 1_000_003):
        want = julius.resample_frac(torch.zeros(1, frames), 44100, 48000).shape[-1]
        assert resample.resampled_length(frames, 44100, 48000) == want
    assert resample.resampled_length(0, 44100, 48000) == 0


def test_rates_sharing_no_factor_are_refused_before_allocating_gigabytes():
    resample.check_rates(96000, 44100)  # 320/147 phases: small
    resample.check_rates(8000, 44100)
    with pytest.raises(ValueError, match=r"44100 Hz to 44099 Hz needs a \d+\.\d GiB .*convert the "
                                         r"file to a standard rate"):
        resample.check_rates(44100, 44099)
    src = np.zeros((100, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="share almost no common factor"):
        resample.resample_into(src, 44100, 44099, np.zeros((100, 1), dtype=np.float32))
