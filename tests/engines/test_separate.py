"""The ``separate`` engine: a tiny random HTDemucs through demucs's real loader.

The tiny model (tests/models.py) is written with demucs's own serialisation
and loaded with ``demucs.pretrained.get_model(name, repo=folder)`` from the
model store, so loading, checksums, bags and ``apply_model`` are demucs's.
"""

from __future__ import annotations

import gc
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("demucs")

from bridge.core.config import Config  # noqa: E402
from bridge.core.engine import Audio, RunContext  # noqa: E402
from bridge.core.errors import Cancelled, InvalidArgument, MediaError, Unavailable  # noqa: E402
from bridge.core.jobs import JobState  # noqa: E402
from bridge.core.service import Service  # noqa: E402
from bridge.core.store import ModelEntry, ModelStore  # noqa: E402
from bridge.engines import Registry  # noqa: E402
from bridge.engines import demucs as sep  # noqa: E402
from bridge.engines.demucs import SeparateEngine  # noqa: E402
from tests.conftest import wait_state as wait  # noqa: E402
from tests.models import demucs_package, save_demucs_package, tiny_htdemucs, \
    write_tiny_demucs_repo  # noqa: E402

SOURCES = ["drums", "bass", "other", "vocals"]
SEGMENT = 4  # seconds; the tiny model's, so short clips stay fast


def music(seconds: float, rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Noise bursts over a chord: something with structure, float32 (frames, channels)."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate) + 7  # not a round number of anything
    t = np.arange(frames) / rate
    tone = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110, 220 * 1.26, 330))
    hits = rng.standard_normal(frames) * 0.2 * (np.sin(2 * np.pi * 2 * t) > 0.9)
    cols = [tone * (1 - 0.2 * c) + hits * (0.5 + 0.5 * c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def install(engine: SeparateEngine, store: ModelStore, source: Path, name: str) -> ModelEntry:
    """Put a model into the store the way `models import` does."""
    staged = store.staging()
    info = engine.import_model(source, name, staged)
    return store.add(staged, ModelEntry(name=name, engine="separate", size_bytes=0,
                                        source=f"import:{source}", **info))


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    return write_tiny_demucs_repo(tmp_path_factory.mktemp("repo") / "tiny", segment=SEGMENT)


@pytest.fixture(scope="module")
def engine(tiny_repo, tmp_path_factory) -> SeparateEngine:
    eng = SeparateEngine()
    eng.store = ModelStore(tmp_path_factory.mktemp("store"))
    install(eng, eng.store, tiny_repo, "tiny")
    return eng


@pytest.fixture(scope="module")
def handle(engine):
    loaded = engine.load("tiny", "cpu")
    yield loaded
    engine.unload(loaded)


def separate(engine, handle, samples, rate, ctx=None, **params):
    values = engine.validate({"shifts": 0, **params})
    return engine.run(handle, {"audio": Audio(samples, rate, name="clip")}, values,
                      ctx or RunContext())


def by_kind(result) -> dict[str, np.ndarray]:
    return {o.kind: o.audio.samples for o in result.outputs}


def demucs_reference(model, samples: np.ndarray) -> np.ndarray:
    """demucs's own path, as its api.Separator does it: (sources, frames, channels)."""
    from demucs.apply import apply_model

    mix = torch.from_numpy(samples.T.copy())
    ref = mix.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    with torch.no_grad():
        out = apply_model(model, ((mix - mean) / std)[None], shifts=0, split=True, overlap=0.25)
    return (out[0] * std + mean).permute(0, 2, 1).numpy()


# -- shapes, rates, channels ------------------------------------------------------
@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 2), (44100, 1), (8000, 1)])
def test_stems_keep_the_sources_length_rate_and_channels(engine, handle, rate, channels):
    samples = music(1.3, rate, channels)  # shorter than one 4 s segment
    result = separate(engine, handle, samples, rate)
    assert [o.kind for o in result.outputs] == SOURCES
    for out in result.outputs:
        assert out.audio.sample_rate == rate
        assert out.audio.samples.shape == samples.shape
        assert out.audio.samples.dtype == np.float32
        assert np.isfinite(out.audio.samples).all() and out.audio.samples.std() > 1e-4
    assert ("resampled" in result.report) == (rate != 44100)


def test_output_equals_demucs_apply_model_at_shifts_0(engine, handle):
    samples = music(6.0)
    ours = by_kind(separate(engine, handle, samples, 44100))
    theirs = demucs_reference(handle.model, samples)
    for k, stem in enumerate(SOURCES):
        np.testing.assert_allclose(ours[stem], theirs[k], atol=1e-4, rtol=0)


def test_long_files_run_in_bounded_windows_that_match_one_pass(engine, handle, monkeypatch):
    samples = music(22.0, seed=3)
    whole = by_kind(separate(engine, handle, samples, 44100))
    import demucs.apply

    seen, depth = [], [0]
    real = demucs.apply.apply_model

    def spy(model, mix, *args, **kwargs):  # demucs recurses through this name too
        if not depth[0]:
            seen.append(mix.shape[-1])
        depth[0] += 1
        try:
            return real(model, mix, *args, **kwargs)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(demucs.apply, "apply_model", spy)
    windowed = SeparateEngine()
    windowed.store, windowed.window_seconds = engine.store, 5.0
    result = separate(windowed, handle, samples, 44100)
    # 5 s rounds to 2 strides (6 s); margins: 2 strides cover a 4 s segment + 0.5 s fade.
    assert result.report["windows"] == 4 and len(seen) == 4
    assert max(seen) <= 18 * 44100 < samples.shape[0]
    for stem, out in by_kind(result).items():
        np.testing.assert_allclose(out, whole[stem], atol=1e-5, rtol=0)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1)])
def test_long_files_stay_on_disk_and_give_the_same_stems(engine, handle, tmp_path, rate,
                                                         channels):
    from bridge.core.scratch import Scratch

    samples = music(14.0, rate, channels, seed=9)
    memory = by_kind(separate(engine, handle, samples, rate))
    windowed = SeparateEngine()
    windowed.store, windowed.window_seconds = engine.store, 5.0
    with Scratch(tmp_path / "job", large_bytes=1) as scratch:  # every array on disk
        made = []
        real = scratch.array
        scratch.array = lambda *shape: made.append(real(*shape)) or made[-1]
        result = separate(windowed, handle, np.memmap(_saved(tmp_path, samples), np.float32,
                                                      "r", shape=samples.shape),
                          rate, ctx=RunContext(scratch=scratch))
        # stems at the model's rate, plus (48 kHz) the resampled mix and stems back
        assert len(made) == (4 if rate == 44100 else 9)
        assert all(isinstance(a, np.memmap) for a in made)
        assert result.report["windows"] > 1
        for stem, out in by_kind(result).items():
            assert isinstance(out, np.memmap) and out.shape == samples.shape
            np.testing.assert_allclose(out, memory[stem], atol=1e-5, rtol=0)
    assert not (tmp_path / "job").exists()


def _saved(folder: Path, samples: np.ndarray) -> Path:
    path = folder / "mix.f32"
    samples.astype(np.float32).tofile(path)
    return path


def test_a_rate_sharing_no_factor_with_the_models_is_refused_clearly(engine, handle):
    with pytest.raises(MediaError, match=r"audio at 44099 Hz cannot be separated by model 'tiny' "
                                         r"\(44100 Hz\): .*convert the file to a standard rate"):
        separate(engine, handle, music(0.5, 44099), 44099)


def test_same_seed_gives_identical_stems_with_shifts(engine, handle):
    samples = music(1.5, seed=1)
    first = by_kind(separate(engine, handle, samples, 44100, shifts=1, seed=7))
    again = by_kind(separate(engine, handle, samples, 44100, shifts=1, seed=7))
    other = by_kind(separate(engine, handle, samples, 44100, shifts=1, seed=8))
    for stem in SOURCES:
        np.testing.assert_array_equal(first[stem], again[stem])
    assert max(np.abs(first[s] - other[s]).max() for s in SOURCES) > 1e-4


# -- stems ------------------------------------------------------------------------
# -- several segments per forward pass, half precision --------------------------------
def count_forwards(model):
    """Batch size of each forward pass of a single model (a bag of one: its member)."""
    model = model.models[0] if hasattr(model, "models") else model
    calls = []
    hook = model.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    return calls, hook


def test_segments_batched_into_one_pass_give_demucs_own_stems(engine, handle):
    samples = music(13.0, seed=4)  # 13 s at stride 3 s: 5 segments
    calls, hook = count_forwards(handle.model)
    try:
        one = by_kind(separate(engine, handle, samples, 44100, shifts=1, seed=3))
        single = list(calls)
        calls.clear()
        result = separate(engine, handle, samples, 44100, shifts=1, seed=3, segments_per_pass=3)
    finally:
        hook.remove()
    assert single == [1] * 5 and calls == [3, 2]  # 5 segments: one batch of 3, one of 2
    assert result.report["segments_per_pass"] == 3 and result.report["precision"] == "float32"
    for stem, out in by_kind(result).items():
        np.testing.assert_allclose(out, one[stem], atol=1e-5, rtol=0)


def test_half_precision_runs_close_to_float32_and_says_so(engine, handle):
    samples = music(5.0, seed=5)
    full = by_kind(separate(engine, handle, samples, 44100))
    half = separate(engine, handle, samples, 44100, precision="half", segments_per_pass=2)
    assert half.report["precision"] == "half" and "warnings" not in half.report
    for stem, out in by_kind(half).items():  # bfloat16 on CPU: ~3 significant digits
        error = np.sqrt(np.mean((out - full[stem]) ** 2) / np.mean(full[stem] ** 2))
        assert 0 < error < 0.05, (stem, error)


def test_a_model_that_overflows_in_half_falls_back_to_float32(engine, handle, monkeypatch):
    import copy

    from bridge.engines import demucs_batch

    # float16, as on CUDA (CPU autocast does float16 too), on a model whose first
    # layers give activations past float16's 65504: finite in float32, inf in half.
    monkeypatch.setattr(demucs_batch, "_autocast",
                        lambda device: torch.autocast("cpu", dtype=torch.float16))
    loud = copy.deepcopy(handle)
    member = loud.model.models[0] if hasattr(loud.model, "models") else loud.model
    with torch.no_grad():
        member.encoder[0].conv.weight.mul_(1e5)
        member.tencoder[0].conv.weight.mul_(1e5)
    samples = music(5.0, seed=6)
    full = by_kind(separate(engine, loud, samples, 44100, segments_per_pass=2))
    result = separate(engine, loud, samples, 44100, precision="half", segments_per_pass=2)
    assert result.report["precision"] == "float32"
    assert result.report["warnings"] == [
        "half precision gave non-finite values; model 'tiny' ran in float32"]
    for stem, out in by_kind(result).items():
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, full[stem], atol=1e-5, rtol=0)


def test_cancel_between_batches(engine, handle):
    checks = []
    ctx = RunContext(cancelled=lambda: checks.append(1) or len(checks) > 3)
    with pytest.raises(Cancelled):
        separate(engine, handle, music(12.0), 44100, ctx=ctx, segments_per_pass=2)
    assert len(checks) == 4


def test_stem_subset_and_two_stem_mode(engine, handle):
    samples = music(1.5, seed=2)
    full = by_kind(separate(engine, handle, samples, 44100))
    subset = separate(engine, handle, samples, 44100, stems="vocals, drums")
    assert [o.kind for o in subset.outputs] == ["vocals", "drums"]
    np.testing.assert_allclose(by_kind(subset)["vocals"], full["vocals"], atol=1e-6)
    two = separate(engine, handle, samples, 44100, two_stems="vocals")
    assert [o.kind for o in two.outputs] == ["vocals", "no_vocals"]
    got = by_kind(two)
    np.testing.assert_allclose(got["vocals"], full["vocals"], atol=1e-6)
    # A random model's sources do not sum to the mix; what holds is demucs's
    # --two-stems "add": no_<stem> is the sum of the other stems.
    np.testing.assert_allclose(got["no_vocals"], full["drums"] + full["bass"] + full["other"],
                               atol=1e-5)
    np.testing.assert_allclose(got["vocals"] + got["no_vocals"], sum(full.values()), atol=1e-5)


def test_unknown_stems_are_refused_with_the_stems_that_exist(engine, handle):
    with pytest.raises(InvalidArgument, match="unknown stem 'kazoo'; stems: .*drums.*harmonic"):
        engine.validate({"stems": "vocals,kazoo"})
    with pytest.raises(InvalidArgument, match="either 'stems' or 'two_stems'"):
        engine.validate({"stems": "vocals", "two_stems": "drums"})
    # guitar is a demucs stem, but not this model's: refused when it runs
    with pytest.raises(InvalidArgument, match="no stem 'guitar'; its stems: drums, bass, other, vocals"):
        separate(engine, handle, music(0.5), 44100, stems="guitar")


def test_a_bag_runs_only_the_members_a_stem_subset_needs(tmp_path):
    eng = SeparateEngine()
    eng.store = ModelStore(tmp_path / "store")
    repo = write_tiny_demucs_repo(tmp_path / "bag", name="duo", sources=("drums", "bass"), bag=2,
                                  weights=[[1, 0], [0, 1]], segment=SEGMENT)
    install(eng, eng.store, repo, "duo")
    bag = eng.load("duo", "cpu")
    calls = [0, 0]
    hooks = [m.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, m in enumerate(bag.model.models)]
    samples = music(1.0)
    try:
        result = separate(eng, bag, samples, 44100, stems="bass")
        assert calls[0] == 0 and calls[1] > 0
        assert result.report["bag_members_run"] == 1 and result.report["bag_members"] == 2
        solo = demucs_reference(bag.model.models[1], samples)
        np.testing.assert_allclose(by_kind(result)["bass"], solo[1], atol=1e-4)
        calls[:] = [0, 0]
        separate(eng, bag, samples, 44100)
        assert calls[0] > 0 and calls[1] > 0
    finally:
        for hook in hooks:
            hook.remove()


# -- hpss -------------------------------------------------------------------------
def test_hpss_puts_clicks_in_percussive_and_the_tone_in_harmonic(engine):
    rate = 44100
    t = np.arange(rate * 3) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    clicks = np.zeros_like(t)
    rng = np.random.default_rng(0)
    for start in range(0, t.size, rate // 4):  # a 16th-note drum loop at 60 BPM
        n = min(1000, t.size - start)
        clicks[start:start + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / 150) * 0.8
    samples = np.stack([tone + clicks, 0.7 * tone + clicks], axis=1).astype(np.float32)
    hpss = engine.load("hpss", "cpu")
    result = engine.run(hpss, {"audio": Audio(samples, rate)}, engine.validate({}), RunContext())
    got = by_kind(result)
    assert set(got) == {"harmonic", "percussive"}
    share = {name: {part: float(got[part][:, 0] @ comp / (comp @ comp)) for part in got}
             for name, comp in (("tone", tone), ("clicks", clicks))}
    assert share["tone"]["harmonic"] > 0.95 and share["tone"]["percussive"] < 0.05
    assert share["clicks"]["percussive"] > 0.9 and share["clicks"]["harmonic"] < 0.1
    np.testing.assert_allclose(got["harmonic"] + got["percussive"], samples, atol=1e-4)
    assert "not neural" in result.report["method"]
    assert "not a neural separation" in next(m for m in engine.models() if m.name == "hpss").description


def test_six_channels_are_refused_by_demucs_and_split_by_hpss(engine, handle):
    samples = music(0.5, channels=6)
    with pytest.raises(MediaError, match="audio has 6 channels.*at most 2.*hpss"):
        separate(engine, handle, samples, 44100)
    hpss = engine.load("hpss", "cpu")
    result = engine.run(hpss, {"audio": Audio(samples, 44100)},
                        engine.validate({"two_stems": "percussive"}), RunContext())
    assert [o.kind for o in result.outputs] == ["percussive", "no_percussive"]
    assert all(o.audio.samples.shape == samples.shape for o in result.outputs)


# -- cancel -------------------------------------------------------------------------
def test_cancel_inside_apply_model_stops_and_frees_the_work(engine, handle):
    samples = music(12.0)
    checks = []
    ctx = RunContext(cancelled=lambda: checks.append(1) or len(checks) > 3)
    with pytest.raises(Cancelled) as caught:
        separate(engine, handle, samples, 44100, ctx=ctx)
    assert len(checks) == 4  # stopped at the first check that said so, mid-separation
    # Even while the error is still held (as the job runner holds it), it keeps
    # no demucs frames alive: no chained context, and no big tensor survives.
    assert caught.value.__context__ is None
    gc.collect()
    params = {id(p) for p in handle.model.parameters()}
    with warnings.catch_warnings():  # isinstance() pokes deprecated torch module attributes
        warnings.simplefilter("ignore")
        big = [o for o in gc.get_objects() if _is_tensor(o)
               and id(o) not in params and o.numel() >= samples.shape[0]]
    assert big == []


def _is_tensor(obj) -> bool:
    try:
        return isinstance(obj, torch.Tensor)
    except ReferenceError:  # a dead weakref.proxy (other libraries in this process hold some)
        return False


# -- loading, importing, pulling ---------------------------------------------------
def test_broken_checkpoints_fail_clearly_and_never_exit(engine, tiny_repo, tmp_path):
    store = ModelStore(tmp_path / "store")
    eng = SeparateEngine()
    eng.store = store
    install(eng, store, tiny_repo, "cut")
    th = next((store.root / "cut").glob("*.th"))
    th.write_bytes(th.read_bytes()[:5000])  # truncated: its name's checksum no longer holds
    with pytest.raises(Unavailable, match=r"model 'cut' in .*Invalid checksum.*models pull cut"):
        eng.load("cut", "cpu")
    th.rename(th.with_name("nosum.th"))  # no checksum in the name: torch.load meets the damage
    (store.root / "cut" / "cut.yaml").write_text("models: ['nosum']\n")
    with pytest.raises(Unavailable, match="model 'cut'.*cannot be loaded: .*Error"):
        eng.load("cut", "cpu")
    # A quantized package without diffq: demucs calls fatal() (sys.exit) inside.
    package = demucs_package(tiny_htdemucs(segment=SEGMENT))
    package["state"] = {"__quantized": True}
    quant = tmp_path / "quant"
    quant.mkdir()
    save_demucs_package(package, quant, "q0")
    (quant / "quant.yaml").write_text("models: ['q0']\n")
    with pytest.raises(Unavailable, match="diffq"):
        sep.load_demucs("quant", quant)


def test_import_single_package_and_refuse_what_is_not_a_model(engine, tiny_repo, tmp_path):
    package = tmp_path / "my model.th"
    shutil.copyfile(next(tiny_repo.glob("*.th")), package)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    info = engine.import_model(package, "mine", first)
    assert info["licence"] == "MIT (demucs)" and len(info["version"]) == 12
    assert (first / "mine.yaml").read_text() == "models: ['my_model']\n"
    from demucs.pretrained import get_model

    assert list(get_model("mine", repo=first).sources) == SOURCES
    assert engine.import_model(package, "mine", second)["version"] == info["version"]
    garbage = tmp_path / "garbage.th"
    garbage.write_bytes(b"not a model" * 100)
    (tmp_path / "c").mkdir()
    with pytest.raises(InvalidArgument, match="does not load as a demucs model"):
        engine.import_model(garbage, "junk", tmp_path / "c")
    lying = tmp_path / "abc-00000000.th"
    shutil.copyfile(package, lying)
    with pytest.raises(InvalidArgument, match="is damaged"):
        engine.import_model(lying, "junk", tmp_path / "c")
    with pytest.raises(InvalidArgument, match="not a demucs model"):
        engine.import_model(tmp_path / "song.wav", "junk", tmp_path / "c")


def test_catalogue_and_pull_plan_come_from_demucs_own_list(engine, monkeypatch):
    names = engine.catalogue()
    assert {"htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"} <= set(names)
    plan = engine.pull_plan("htdemucs_ft")
    assert len(plan.files) == 4 and plan.licence == "MIT (demucs)"
    first = plan.files[0]
    assert first.url == sep.ROOT_URL + "hybrid_transformer/" + first.filename
    assert first.filename.startswith("f7e0c4bc-") and first.sha256_prefix == first.filename[9:17]
    assert plan.extra["htdemucs_ft.yaml"] == (sep._remote_dir() / "htdemucs_ft.yaml").read_bytes()
    monkeypatch.setenv("STUDIO_BRIDGE_DEMUCS_URL", "http://127.0.0.1:9/d")
    assert engine.pull_plan("mdx_extra").files[0].url.startswith("http://127.0.0.1:9/d/mdx_final/")
    with pytest.raises(InvalidArgument, match="no model 'htdemux'.*htdemucs_ft"):
        engine.pull_plan("htdemux")


def test_models_and_default_model(tiny_repo, tmp_path):
    eng = SeparateEngine()
    eng.store = ModelStore(tmp_path / "store")
    assert [m.name for m in eng.models()] == ["hpss"] and eng.default_model() == "hpss"
    entry = install(eng, eng.store, tiny_repo, "tiny")
    assert eng.default_model() == "tiny"
    spec = next(m for m in eng.models() if m.name == "tiny")
    assert spec.version == entry.version and spec.size_bytes > 400_000
    assert "Stems: drums, bass, other, vocals" in spec.description
    install(eng, eng.store, tiny_repo, "htdemucs")
    assert eng.default_model() == "htdemucs"


# -- through the service ------------------------------------------------------------
@pytest.fixture
def service(media_dir, tiny_repo):
    media = media_dir / "media"
    media.mkdir()
    registry = Registry(targets={"separate": "bridge.engines.demucs:SeparateEngine"}, plugins=False)
    config = Config(state_dir=media_dir / "state", media_roots=[media], grpc="", socket="", osc="")
    svc = Service(config, registry)
    eng = registry.get("separate")
    install(eng, svc.models_store, tiny_repo, "tiny")
    loads = []
    real = eng._load
    eng._load = lambda model, device: loads.append(model) or real(model, device)
    yield svc, eng, loads, media
    svc.close(timeout=5)


def test_service_writes_requested_stems_and_keeps_the_model_resident(service):
    svc, _, loads, media = service
    stereo = media / "song.wav"
    soundfile.write(stereo, music(9.0, 48000), 48000, subtype="PCM_24")
    job = svc.submit("separate", {"audio": {"path": str(stereo)}},
                     {"stems": "vocals,drums", "shifts": 0}, out_dir=str(media / "out"))
    events = [rec for _, rec in svc.watch(job.id)]
    done = wait(svc, job.id, {JobState.SUCCEEDED, JobState.FAILED})
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.model == "tiny" and done.report["model"] == "tiny"
    assert sorted(o["kind"] for o in done.outputs) == ["drums", "vocals"]
    assert sorted(p.name for p in (media / "out").iterdir()) == sorted(
        Path(o["path"]).name for o in done.outputs)
    for out in done.outputs:
        assert out["path"].endswith(f".{out['kind']}.wav")
        info = soundfile.info(out["path"])
        assert (info.frames, info.samplerate, info.channels) == (soundfile.info(stereo).frames, 48000, 2)
    separating = [e.progress for e in events if e.stage == "separating"]
    assert len(separating) >= 2 and separating == sorted(separating)
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0

    mono = media / "voice.wav"
    soundfile.write(mono, music(1.0, 8000, 1), 8000, subtype="PCM_16")
    job = svc.submit("separate", {"audio": {"path": str(mono)}}, {"two_stems": "vocals"},
                     out_dir=str(media / "out2"))
    done = wait(svc, job.id, {JobState.SUCCEEDED, JobState.FAILED})
    assert done.state is JobState.SUCCEEDED, done.error
    assert sorted(o["kind"] for o in done.outputs) == ["no_vocals", "vocals"]
    for out in done.outputs:
        info = soundfile.info(out["path"])
        assert (info.frames, info.samplerate, info.channels) == (soundfile.info(mono).frames, 8000, 1)
    assert loads == ["tiny"]  # resident across both jobs
    assert {m["name"]: m["state"] for m in svc.models()}["tiny"] == "resident"


def test_service_cancel_mid_run_writes_nothing(service):
    svc, _, _, media = service
    song = media / "long.wav"
    soundfile.write(song, music(20.0), 44100, subtype="FLOAT")
    job = svc.submit("separate", {"audio": {"path": str(song)}}, {"shifts": 0},
                     out_dir=str(media / "out"))
    for _, rec in svc.watch(job.id):
        if rec.stage == "separating":
            svc.cancel(job.id)
            break
    done = wait(svc, job.id, {JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED})
    assert done.state is JobState.CANCELLED and done.progress < 0.9
    assert not (media / "out").exists() or list((media / "out").iterdir()) == []


def test_service_reports_a_broken_model_and_keeps_serving(service, tiny_repo):
    svc, eng, _, media = service
    install(eng, svc.models_store, tiny_repo, "broken")
    th = next((svc.models_store.root / "broken").glob("*.th"))
    th.write_bytes(th.read_bytes()[:-100])
    clip = media / "clip.wav"
    soundfile.write(clip, music(0.5), 44100)
    bad = svc.submit("separate", {"audio": {"path": str(clip)}}, {"shifts": 0},
                     out_dir=str(media / "o"), model="broken")
    failed = wait(svc, bad.id, {JobState.FAILED, JobState.SUCCEEDED})
    assert failed.state is JobState.FAILED and failed.error["code"] == "unavailable"
    assert "checksum" in failed.error["message"] and "models pull broken" in failed.error["message"]
    with pytest.raises(InvalidArgument, match="unknown stem"):
        svc.submit("separate", {"audio": {"path": str(clip)}}, {"stems": "kazoo"})
    good = svc.submit("separate", {"audio": {"path": str(clip)}}, {"shifts": 0},
                      out_dir=str(media / "o"), model="tiny")
    assert wait(svc, good.id, {JobState.SUCCEEDED, JobState.FAILED}).state is JobState.SUCCEEDED
    hp = svc.submit("separate", {"audio": {"path": str(clip)}}, {}, out_dir=str(media / "o"),
                    model="hpss")
    assert wait(svc, hp.id, {JobState.SUCCEEDED, JobState.FAILED}).state is JobState.SUCCEEDED
