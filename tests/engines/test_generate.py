"""The generate engine on a tiny random MusicGen loaded through audiocraft's real loader.

The model's output is noise-like (random weights): tests check lengths, rates,
seeds, batching, alignment mechanics, progress and cancel - never musical quality.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
try:  # audiocraft imports torchaudio, which needs the project's stand-in here
    from bridge.engines.audiocraft_compat import import_musicgen

    import_musicgen()
except ImportError as exc:
    pytest.skip(f"audiocraft not installed: {exc}", allow_module_level=True)

from bridge.core.engine import Audio, RunContext  # noqa: E402
from bridge.core.errors import Cancelled, InvalidArgument  # noqa: E402
from bridge.core.store import ModelEntry, ModelStore  # noqa: E402
from bridge.engines.demucs import SeparateEngine  # noqa: E402
from bridge.engines.musicgen import GenerateEngine  # noqa: E402
from tests.models import write_tiny_demucs_repo, write_tiny_musicgen  # noqa: E402


def install(engine, store: ModelStore, source, name: str, kind: str = "generate"):
    staged = store.staging()
    info = engine.import_model(source, name, staged)
    return store.add(staged, ModelEntry(name=name, engine=kind, size_bytes=0,
                                        source=f"import:{source}", **info))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    base = tmp_path_factory.mktemp("gen")
    eng = GenerateEngine()
    eng.store = ModelStore(base / "store")
    install(eng, eng.store, write_tiny_musicgen(base / "tiny"), "tiny")
    return eng


@pytest.fixture(scope="module")
def handle(engine):
    torch.set_num_threads(1)  # a 2-layer model: threads only add overhead
    loaded = engine.load("tiny", "cpu")
    yield loaded
    engine.unload(loaded)


def generate(engine, handle, inputs=None, ctx=None, **params):
    values = engine.validate({"prompt": "warm rhodes chords", "seed": 7, **params})
    return engine.run(handle, inputs or {}, values, ctx or RunContext())


def clip(seconds: float, rate: int = 44100, channels: int = 1) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 330 * t)
    return Audio(np.repeat(tone[:, None], channels, 1).astype(np.float32), rate, name="riff")


def test_loads_through_the_real_loader_and_generates_at_the_hosts_rate(engine, handle):
    assert (handle.sample_rate, handle.channels, handle.max_duration, handle.melody) == \
        (32000, 1, 30.0, False)
    result = generate(engine, handle, duration=2.0)
    (out,) = result.outputs
    assert out.kind == "7" and result.name == "warm-rhodes-chords"
    assert out.audio.sample_rate == 48000 and out.audio.samples.shape == (96000, 1)
    assert np.isfinite(out.audio.samples).all() and out.audio.samples.std() > 1e-4
    assert result.report["seed"] == 7 and result.report["model"] == "tiny"


def test_same_seed_same_audio_and_no_seed_draws_one(engine, handle):
    a = generate(engine, handle, duration=1.0, seed=11).outputs[0].audio.samples
    b = generate(engine, handle, duration=1.0, seed=11).outputs[0].audio.samples
    c = generate(engine, handle, duration=1.0, seed=12).outputs[0].audio.samples
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    first = engine.validate({"prompt": "x"})["seed"]
    second = engine.validate({"prompt": "x"})["seed"]
    assert isinstance(first, int) and first != second  # 1 in 2^31 to collide


@pytest.mark.parametrize("rate", [48000, 44100])
def test_tempo_lock_gives_exact_bars_at_the_hosts_rate(engine, handle, rate):
    result = generate(engine, handle, bpm=120, bars=2, sample_rate=rate)
    frames = round(2 * 4 * 60 / 120 * rate)
    audio = result.outputs[0].audio
    assert audio.samples.shape == (frames, 1) and audio.sample_rate == rate
    report = result.report
    assert report["tempo"]["frames"] == frames and report["conditioning"].endswith(", 120 bpm")
    placement = report["placement"][0]
    assert placement["aligned"] == "downbeat by onset analysis"
    assert 0 <= placement["downbeat_at_s"] <= 2.0  # within the first bar


def test_a_loop_is_cut_from_longer_audio_and_crossfaded(engine, handle):
    plain = generate(engine, handle, bpm=100, bars=1, sample_rate=32000)
    looped = generate(engine, handle, bpm=100, bars=1, sample_rate=32000, loop=True)
    a, b = plain.outputs[0].audio.samples, looped.outputs[0].audio.samples
    assert a.shape == b.shape == (round(4 * 0.6 * 32000), 1)
    assert looped.report["tempo"]["loop"] is True
    assert looped.report["seconds_generated"] > plain.report["seconds_generated"]


def test_longer_than_the_context_runs_through_windowed_continuation(engine, handle):
    windows = []
    real = handle.model.lm.generate

    def spy(*args, **kwargs):
        windows.append(kwargs["max_gen_len"])
        return real(*args, **kwargs)

    handle.model.lm.generate = spy
    try:
        result = generate(engine, handle, duration=34.0, sample_rate=32000)
    finally:
        del handle.model.lm.generate
    assert result.outputs[0].audio.samples.shape == (34 * 32000, 1)
    assert windows == [30 * 50, (34 - 18) * 50]  # 30 s, then 18 s on: audiocraft's stride


def test_variations_are_one_batch(engine, handle):
    sizes = []
    hook = handle.model.lm.register_forward_hook(
        lambda _m, args, _o: sizes.append(args[0].shape[0]))
    try:
        result = generate(engine, handle, duration=1.0, variations=3)
    finally:
        hook.remove()
    assert [o.kind for o in result.outputs] == ["7-1", "7-2", "7-3"]
    assert set(sizes) == {6}  # 3 variations x 2 (classifier-free guidance), every step
    first, second = (o.audio.samples for o in result.outputs[:2])
    assert np.abs(first - second).max() > 1e-3


def test_continuation_returns_what_follows_the_clip(engine, handle):
    riff = clip(2.0)
    result = generate(engine, handle, {"continue": riff}, bpm=120, bars=1)
    audio = result.outputs[0].audio
    assert audio.sample_rate == 44100 and audio.samples.shape == (88200, 1)  # the clip's rate
    assert result.report["placement"][0]["aligned"].startswith("continuation")
    with pytest.raises(InvalidArgument, match=r"clip to continue is 26.0 s; .* at most 25 s"):
        generate(engine, handle, {"continue": clip(26.0, 8000)}, duration=1.0)


def test_melody_on_a_text_model_is_refused_naming_melody_models(engine, handle):
    with pytest.raises(InvalidArgument, match="'tiny' has no melody conditioning; melody models"):
        generate(engine, handle, {"melody": clip(1.0)}, duration=1.0)


def test_a_melody_model_follows_a_clip_with_demucs_from_the_store(tmp_path):
    eng = GenerateEngine()
    eng.store = ModelStore(tmp_path / "store")
    separate = SeparateEngine()
    separate.store = eng.store
    install(separate, eng.store, write_tiny_demucs_repo(tmp_path / "dm", name="htdemucs"),
            "htdemucs", "separate")
    install(eng, eng.store, write_tiny_musicgen(tmp_path / "mel", melody=True), "tiny-melody")
    loaded = eng.load("tiny-melody", "cpu")
    assert loaded.melody
    result = generate(eng, loaded, {"melody": clip(3.0, 44100, 2)}, duration=1.5)
    assert result.outputs[0].audio.samples.shape == (66150, 1)  # 1.5 s at the clip's rate
    eng.unload(loaded)


def test_a_stereo_model_gives_stereo_bars_and_continues_a_mono_clip(tmp_path):
    eng = GenerateEngine()
    eng.store = ModelStore(tmp_path / "store")
    install(eng, eng.store, write_tiny_musicgen(tmp_path / "st", stereo=True), "tiny-stereo")
    loaded = eng.load("tiny-stereo", "cpu")
    assert loaded.channels == 2  # audiocraft interleaves the two channels' codebooks
    looped = generate(eng, loaded, bpm=120, bars=1, loop=True)
    assert looped.outputs[0].audio.samples.shape == (96000, 2)
    cont = generate(eng, loaded, {"continue": clip(1.0, 48000, 1)}, bpm=120, bars=1)
    assert cont.outputs[0].audio.samples.shape == (96000, 2)
    eng.unload(loaded)


def test_progress_per_step_and_cancel_within_a_step_leaves_the_model_usable(engine, handle):
    seen = []
    generate(engine, handle, duration=1.0, ctx=RunContext(lambda f, s: seen.append((f, s))))
    steps = [f for f, s in seen if s == "generating"]
    assert len(steps) >= 50 and steps == sorted(steps)  # 50 frames a second, one event each
    checks = []
    ctx = RunContext(cancelled=lambda: checks.append(1) or len(checks) > 10)
    with pytest.raises(Cancelled):
        generate(engine, handle, duration=5.0, ctx=ctx)
    assert len(checks) == 11  # stopped at the step that saw the cancel
    again = generate(engine, handle, duration=1.0)
    assert again.outputs[0].audio.samples.shape == (48000, 1)


@pytest.mark.parametrize("params,message", [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": "x" * 10000}, "prompt is 10000 characters; at most 2000"),
    ({"bpm": 0, "bars": 4}, "bpm"),
    ({"bpm": 1000, "bars": 4}, "bpm"),
    ({"bpm": 120, "bars": 0}, "bars"),
    ({"bpm": 120, "bars": 100000}, "bars"),
    ({"bpm": 30, "bars": 200}, "at most 300 s"),
    ({"bpm": 120}, "give bpm and bars together"),
    ({"loop": True}, "loop needs bpm and bars"),
])
def test_bad_parameters_say_what_is_allowed(engine, params, message):
    with pytest.raises(InvalidArgument, match=message):
        engine.validate({"prompt": "ok", **params})


def test_import_refuses_what_is_not_a_musicgen_folder(engine, tmp_path):
    with pytest.raises(InvalidArgument, match="needs state_dict.bin, compression_state_dict.bin"):
        install(engine, engine.store, tmp_path, "empty")
    broken = write_tiny_musicgen(tmp_path / "broken", seed=1)
    (broken / "state_dict.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidArgument, match="does not load as MusicGen"):
        install(engine, engine.store, broken, "broken")
    assert [m.name for m in engine.models()] == ["tiny"]


# -- models pull: the hub's listing and checksums, from a server on 127.0.0.1 ----------
def hub_files(folder) -> dict[str, bytes]:
    """A hub on disk: facebook/musicgen-small and google-t5/t5-base, with listings."""
    import hashlib
    import json

    files = {}
    repos = {"facebook/musicgen-small": {p.name: p for p in folder.iterdir() if p.is_file()},
             "google-t5/t5-base": {p.name: p for p in (folder / "t5-base").iterdir()}}
    for repo, members in repos.items():
        listing = []
        for name, path in members.items():
            data = path.read_bytes()
            files[f"{repo}/resolve/main/{name}"] = data
            entry = {"type": "file", "path": name, "size": len(data)}
            if name.endswith((".bin", ".safetensors")):  # large files are LFS: sha256 published
                entry |= {"oid": "0" * 40, "lfs": {"oid": hashlib.sha256(data).hexdigest(),
                                                    "size": len(data)}}
            else:  # small ones: the git blob id
                entry["oid"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            listing.append(entry)
        files[f"api/models/{repo}/tree/main"] = json.dumps(listing).encode()
    return files


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import threading

    from bridge.engines import hf_hub
    from tests.core.test_install import Origin

    server = Origin(hub_files(write_tiny_musicgen(tmp_path / "published", t5=True)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(hf_hub.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def registry_with_generate(store):
    from bridge.engines import Registry

    registry = Registry(targets={"generate": "bridge.engines.musicgen:GenerateEngine"},
                        plugins=False)
    registry.bind_store(store)
    return registry


def test_pull_fetches_weights_and_t5_checks_them_and_the_model_generates(hub, tmp_path):
    from bridge.core import install

    store = ModelStore(tmp_path / "store")
    registry = registry_with_generate(store)
    entry = install.pull(store, registry, "musicgen-small")
    assert entry.engine == "generate" and entry.licence.startswith("CC-BY-NC")
    names = sorted(f["name"] for f in entry.files)
    assert names == ["compression_state_dict.bin", "state_dict.bin", "t5-base/config.json",
                     "t5-base/model.safetensors", "t5-base/tokenizer.json"]
    eng = registry.get("generate")
    loaded = eng.load("musicgen-small", "cpu")  # T5 from the model's folder, no lookup
    result = generate(eng, loaded, duration=0.5, bpm=None)
    assert result.outputs[0].audio.samples.shape == (24000, 1)
    eng.unload(loaded)


@pytest.mark.parametrize("target", ["facebook/musicgen-small/resolve/main/state_dict.bin",
                                    "google-t5/t5-base/resolve/main/config.json"])
def test_a_file_that_does_not_match_the_hubs_checksum_installs_nothing(hub, tmp_path, target):
    from bridge.core import install

    hub.files[target] = hub.files[target][:-1] + b"!"  # same size, one byte changed
    store = ModelStore(tmp_path / "store")
    with pytest.raises(InvalidArgument, match="checksum .* expected"):
        install.pull(store, registry_with_generate(store), "musicgen-small")
    assert store.entries() == []


def test_an_interrupted_pull_resumes_and_unknown_names_list_the_catalogue(hub, tmp_path):
    from bridge.core import install
    from bridge.core.errors import NotFound, Unavailable

    store = ModelStore(tmp_path / "store")
    registry = registry_with_generate(store)
    hub.break_after, hub.break_on = 200_000, "state_dict.bin"  # a weights file breaks off
    with pytest.raises(Unavailable, match="run the same pull again to resume"):
        install.pull(store, registry, "musicgen-small")
    install.pull(store, registry, "musicgen-small")
    assert any(r == "bytes=200000-" for _, r in hub.requests)
    with pytest.raises(NotFound, match="musicgen-stereo-melody"):
        install.pull(store, registry, "musicgen-tiny")
