#!/usr/bin/env python3
"""Separation quality: SDR per stem against ground truth, through the daemon and demucs's API.

Ground truth: a music21 chorale written to MIDI, each part given a General MIDI program
so that it belongs to one demucs stem, plus a drum part written here on the GM drum
channel; every part rendered ALONE by fluidsynth (reverb and chorus off, float WAV),
padded to one length, and the mix defined as their sum, so the stems add up to the mix
exactly. Mapping (what a fair ground truth is for a 4-stem demucs model):

    Soprano -> GM 52 "Choir Aahs"          -> vocals   (a sung vowel; no words)
    Alto    -> GM 0  "Acoustic Grand Piano" -> other    (piano with htdemucs_6s)
    Tenor   -> GM 24 "Nylon Guitar"         -> other    (guitar with htdemucs_6s)
    Bass    -> GM 33 "Electric Bass finger" -> bass
    drums   -> GM channel 10: kick on 1/3, snare on 2/4, closed hi-hat on eighths -> drums

SDR is the plain, global one: SDR = 10 log10(sum s^2 / sum (s - s_hat)^2) over the whole
clip, both channels pooled (s = ground-truth stem, s_hat = estimate; no scale or filter
allowed, unlike BSS-eval's SI-SDR/SDR; not museval's per-second median). Next to it, the
"mix" column is the SDR of the trivial estimate s_hat = mix, a floor to beat.

For each demucs model in the store (``--state-dir``, default the user's), the bench
imports it into a throw-away daemon (a real ``python -m bridge serve`` subprocess; the
store itself is only read), separates the mix through the daemon at shifts=0 and with
demucs's own API in this process (``get_model(name, repo=<store>/<name>)`` +
``apply_model`` on the normalised mix, as ``demucs.api.Separator`` does, same segment and
overlap, shifts=0), and prints the max |daemon - API| per model (should be <= 1e-4).

SDR is printed only for models whose files are demucs's released weights: each ``.th``
is named in demucs's own ``remote/files.txt`` and its content's sha256 starts with the
checksum in its name. Any other model (random, tiny, home-trained) is reported as
unverified and gets no SDR unless named with ``--trust NAME``. A tiny random HTDemucs
built here (tests/models.py, demucs's own serialisation) always runs the daemon-vs-API
equality check, including a clip longer than the daemon's 60 s window; its output is
never scored.

    .venv/bin/python bench/separate_quality.py [--state-dir DIR] [--quick] [--trust NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.music / tests.models: the shared renders and models

from bridge.core.config import state_dir_default  # noqa: E402
from tests.music import SOUNDFONT, have_renderer, render_midi, score_to_midi  # noqa: E402

PY = sys.executable
FOUR = ("drums", "bass", "other", "vocals")
# part name -> (GM program, 4-stem target, 6-stem target)
PARTS = {"Soprano": (52, "vocals", "vocals"), "Alto": (0, "other", "piano"),
         "Tenor": (24, "other", "guitar"), "Bass": (33, "bass", "bass")}
DRUMS = "drums"


def log(msg: str) -> None:
    print(f"[separate_quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the ground truth ------------------------------------------------------------
def _part_midis(score: str, folder: Path) -> dict[str, Path]:
    """One MIDI file per part (conductor track + that part, its GM program set) + drums."""
    import mido

    folder.mkdir(parents=True, exist_ok=True)
    source = mido.MidiFile(score_to_midi(folder, score))
    conductor, tracks = source.tracks[0], source.tracks[1:]
    out: dict[str, Path] = {}
    end = 0
    for track in tracks:
        name = track.name.strip()
        if name not in PARTS:
            raise SystemExit(f"{score}: part '{name}' has no mapping; parts: {list(PARTS)}")
        program = PARTS[name][0]
        new = mido.MidiTrack()
        new.name = name
        new.append(mido.Message("program_change", channel=0, program=program, time=0))
        for msg in track:
            if msg.type == "program_change":  # replaced by ours; keep its delta time
                if msg.time and len(new):
                    new[-1].time += msg.time
                continue
            new.append(msg.copy(channel=0) if hasattr(msg, "channel") else msg)
        end = max(end, sum(m.time for m in track))
        out[name] = _write_midi(source, conductor, new, folder / f"{name}.mid")
    out[DRUMS] = _write_midi(source, conductor, _drum_track(source.ticks_per_beat, end),
                             folder / f"{DRUMS}.mid")
    return out


def _drum_track(tpb: int, end: int):
    """GM drums on channel 10 (index 9): kick 1/3, snare 2/4, hi-hat eighths."""
    import mido

    events = []  # (tick, note, velocity)
    half = tpb // 2
    for tick in range(0, end, half):
        beat, on_beat = divmod(tick, tpb)
        events.append((tick, 42, 60))
        if on_beat == 0:
            events.append((tick, 36 if beat % 2 == 0 else 38, 100 if beat % 2 == 0 else 90))
    msgs = []
    for tick, note, vel in events:
        msgs.append((tick, mido.Message("note_on", channel=9, note=note, velocity=vel)))
        msgs.append((tick + tpb // 8, mido.Message("note_off", channel=9, note=note, velocity=0)))
    msgs.sort(key=lambda item: (item[0], item[1].type == "note_on"))
    track = mido.MidiTrack()
    track.name = DRUMS
    now = 0
    for tick, msg in msgs:
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def _write_midi(source, conductor, track, path: Path) -> Path:
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=source.ticks_per_beat)
    midi.tracks.append(conductor)
    midi.tracks.append(track)
    midi.save(path)
    return path


def render_truth(score: str, folder: Path, rate: int = 44100) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{part: (frames, 2) float32} and their sum, the mix (all padded to one length)."""
    parts = {}
    for name, midi in _part_midis(score, folder).items():
        wav = render_midi(midi, folder / f"{name}.wav", rate)
        parts[name], got = sf.read(wav, dtype="float32", always_2d=True)
        assert got == rate
    frames = max(p.shape[0] for p in parts.values())
    parts = {k: np.pad(v, ((0, frames - v.shape[0]), (0, 0))) for k, v in parts.items()}
    mix = np.sum(list(parts.values()), axis=0, dtype=np.float32)
    return parts, mix


def truth_for(sources, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """Each model source's ground truth (None: nothing in the render belongs to it)."""
    six = "guitar" in sources or "piano" in sources
    frames = next(iter(parts.values())).shape
    truth: dict[str, np.ndarray] = {}
    for name, audio in parts.items():
        stem = DRUMS if name == DRUMS else PARTS[name][2 if six else 1]
        truth[stem] = truth.get(stem, np.zeros(frames, np.float32)) + audio
    return {s: truth.get(s) for s in sources}


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Plain SDR in dB: 10 log10(|s|^2 / |s - s_hat|^2), whole clip, channels pooled."""
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    num, den = np.sum(ref ** 2), np.sum((ref - est) ** 2)
    return float(10 * np.log10(max(num, 1e-20) / max(den, 1e-20)))


# -- which weights are real ------------------------------------------------------
def released_files() -> set[str]:
    """File names of demucs's released weights (its own remote/files.txt)."""
    import demucs

    path = Path(demucs.__file__).parent / "remote" / "files.txt"
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#") and not line.startswith("root:")}


def verify_weights(folder: Path) -> tuple[bool, str]:
    """(True, why) when every .th listed by the model's yaml is a released demucs file."""
    import yaml

    released = released_files()
    yamls = list(folder.glob("*.yaml"))
    if len(yamls) != 1:
        return False, f"{len(yamls)} yaml files"
    sigs = [str(s) for s in yaml.safe_load(yamls[0].read_text())["models"]]
    files = {p.name.split("-", 1)[0]: p for p in folder.glob("*.th")}
    for sig in sigs:
        path = files.get(sig)
        if path is None:
            return False, f"member {sig} missing"
        if path.name not in released:
            return False, f"{path.name} is not one of demucs's released weights"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(path.stem.rsplit("-", 1)[1]):
            return False, f"{path.name}: content sha256 {digest[:8]} does not match its name"
    return True, f"{len(sigs)} released file(s), checksums match"


def demucs_models(state_dir: Path) -> list[tuple[str, Path]]:
    """(name, folder) of the separate-engine models installed in a daemon's store."""
    index = state_dir / "models" / "store.json"
    if not index.exists():
        return []
    data = json.loads(index.read_text())
    entries = data.get("models", data) if isinstance(data, dict) else data
    out = []
    items = entries.values() if isinstance(entries, dict) else entries
    for entry in items:
        if isinstance(entry, dict) and entry.get("engine") == "separate":
            folder = state_dir / "models" / entry["name"]
            if folder.is_dir():
                out.append((entry["name"], folder))
    return sorted(out)


# -- a real daemon -------------------------------------------------------------------
class Daemon:
    """``python -m bridge serve`` in a subprocess with its own state dir (as rpc_bench)."""

    def __init__(self, base: Path):
        self.base = base
        self.sock = str(base / "s.sock")  # short /tmp path: unix sockets <= 107 bytes
        self.state, self.media = base / "state", base / "media"
        self.state.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def import_model(self, folder: Path, name: str) -> float:
        """``python -m bridge models import FOLDER --name NAME --state-dir STATE``; seconds."""
        t0 = time.perf_counter()
        done = subprocess.run([PY, "-m", "bridge", "models", "import", str(folder), "--name", name,
                               "--state-dir", str(self.state)], cwd=ROOT, capture_output=True,
                              text=True)
        if done.returncode:
            raise RuntimeError(f"models import {name} failed: {done.stderr or done.stdout}")
        return time.perf_counter() - t0

    def start(self) -> float:
        """Start; return seconds from spawn to health SERVING."""
        from bridge.client import Client

        t0 = time.perf_counter()
        self._log = open(self.base / "daemon.log", "w")
        self.proc = subprocess.Popen(
            [PY, "-m", "bridge", "serve", "--grpc", "127.0.0.1:0", "--socket", self.sock,
             "--osc", "", "--state-dir", str(self.state), "--media-root", str(self.media),
             "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 60
        while not (self.state / "daemon.json").exists() or not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: "
                                   f"{(self.base / 'daemon.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("daemon never wrote daemon.json")
            time.sleep(0.01)
        self.info = json.loads((self.state / "daemon.json").read_text())
        self.client = Client(f"unix://{self.sock}", timeout=600)
        self.client.wait_until_serving(60)
        return time.perf_counter() - t0

    def separate(self, clip: Path, model: str, params: dict, out: Path) -> tuple[dict, float]:
        """One job (no result cache); (finished job, wall seconds submit -> done)."""
        t0 = time.perf_counter()
        job = self.client.run("separate", {"audio": str(clip)}, params, str(out), model=model,
                              no_cache=True)
        wall = time.perf_counter() - t0
        if job["state"].upper() != "SUCCEEDED":
            raise RuntimeError(f"job {job['state']}: {job['error']}")
        return job, wall

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            return int(next(l for l in handle if l.startswith("VmRSS")).split()[1]) / 1024

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()


def job_stems(job: dict) -> dict[str, np.ndarray]:
    return {o["kind"]: sf.read(o["path"], dtype="float32", always_2d=True)[0]
            for o in job["outputs"]}


# -- demucs's own API --------------------------------------------------------------------
def load_api_model(name: str, folder: Path):
    import torch
    from demucs.pretrained import get_model

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # what the daemon uses
    return get_model(name, repo=folder).eval()


def api_separate(model, mix: np.ndarray, segment=None, overlap=0.25, shifts=0) -> dict[str, np.ndarray]:
    """``demucs.api.Separator.separate_tensor``'s steps: normalise, apply_model, undo."""
    import torch
    from demucs.apply import apply_model

    wav = torch.from_numpy(np.ascontiguousarray(mix.T, dtype=np.float32))
    with torch.inference_mode():
        ref = wav.mean(0)
        mean, std = ref.mean(), ref.std() + 1e-8
        out = apply_model(model, ((wav - mean) / std)[None], shifts=shifts, split=True,
                          overlap=overlap, segment=segment, progress=False, device="cpu")[0]
        out = out * std + mean
    return {s: out[i].T.numpy() for i, s in enumerate(model.sources)}


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if set(a) != set(b):
        return float("inf")
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].shape == b[k].shape
               else float("inf") for k in a)


# -- main ------------------------------------------------------------------------
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=str(state_dir_default()),
                        help="the daemon state dir whose models are scored (default: the user's)")
    parser.add_argument("--score", action="append",
                        help="music21 corpus score(s) with parts Soprano/Alto/Tenor/Bass "
                             "(default: bach/bwv66.6 and bach/bwv26.6; --quick: bwv66.6)")
    parser.add_argument("--trust", action="append", default=[],
                        help="score this model even though its weights are not demucs's "
                             "released files (home-trained)")
    parser.add_argument("--quick", action="store_true",
                        help="one score; the long-clip (windowed) equality check on the tiny "
                             "model only")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if not have_renderer():
        raise SystemExit(f"needs fluidsynth and {SOUNDFONT} (Debian fluidsynth fluid-soundfont-gm)")
    scores = args.score or (["bach/bwv66.6"] if args.quick else ["bach/bwv66.6", "bach/bwv26.6"])
    state_dir = Path(args.state_dir).expanduser()

    base = Path(tempfile.mkdtemp(prefix="sbq-", dir="/tmp"))
    daemon = Daemon(base / "d")
    try:
        # 1. ground truth
        truths = {}
        for score in scores:
            log(f"rendering {score} part by part")
            parts, mix = render_truth(score, base / "truth" / score.replace("/", "_"))
            clip = daemon.media / f"{score.replace('/', '_')}.mix.wav"
            sf.write(clip, mix, 44100, subtype="FLOAT")
            truths[score] = (parts, mix, clip)

        # 2. which installed models are real
        installed = demucs_models(state_dir)
        verdicts = {}
        for name, folder in installed:
            real, why = verify_weights(folder)
            verdicts[name] = (real or name in args.trust, real, why)
        scored = [(n, f) for n, f in installed if verdicts[n][0]]

        # 3. the tiny random model for the equality check, and the daemon
        from tests.models import write_tiny_demucs_repo

        tiny = write_tiny_demucs_repo(base / "tiny", name="tinyrand")
        log("importing models into a throw-away daemon store")
        daemon.import_model(tiny, "tinyrand")
        for name, folder in installed:
            daemon.import_model(folder, name)
        daemon.start()

        print(f"## Separation quality\n")
        print(f"Machine: {platform.node()}, {os.cpu_count()} cores, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"store: {state_dir / 'models'}; scores: {', '.join(scores)}.\n")
        for score, (parts, mix, _) in truths.items():
            dur = mix.shape[0] / 44100
            levels = ", ".join(f"{k} {10 * np.log10(np.mean(v.astype(np.float64) ** 2) + 1e-20):.1f}"
                               for k, v in parts.items())
            print(f"- `{score}`: {dur:.1f} s stereo 44.1 kHz float; part RMS power (dBFS): {levels}; "
                  f"max |sum(parts) - mix| = {np.max(np.abs(np.sum(list(parts.values()), 0) - mix)):.1e}")
        print()

        # 4. installed models
        if not installed:
            print(f"No demucs model is installed in {state_dir / 'models'}: **no SDR is reported** "
                  f"(install one with `python -m bridge models pull htdemucs` on a machine that "
                  f"reaches dl.fbaipublicfiles.com, or import a demucs repo folder).\n")
        else:
            print("| installed model | weights | scored |\n| --- | --- | --- |")
            for name, _ in installed:
                ok, real, why = verdicts[name]
                print(f"| {name} | {'released demucs weights' if real else 'NOT released weights'}: "
                      f"{why} | {'yes' if ok else 'no'}{' (--trust)' if ok and not real else ''} |")
            print()
            if not scored:
                print("No installed model has demucs's released weights: **no SDR is reported** "
                      "(random or unknown weights measure nothing about quality).\n")

        sdr_rows, eq_rows = [], []
        for name, folder in installed:
            model = load_api_model(name, folder)
            for score, (parts, mix, clip) in truths.items():
                log(f"{name} on {score}: daemon, then demucs API")
                job, wall = daemon.separate(clip, name, {"shifts": 0}, daemon.media / "out" / name / score.replace("/", "_"))
                ours = job_stems(job)
                t0 = time.perf_counter()
                theirs = api_separate(model, mix)
                api_wall = time.perf_counter() - t0
                eq_rows.append((name, score, f"default ({job['report']['segment']:g} s)", 0.25,
                                mix.shape[0] / 44100, max_diff(ours, theirs), wall, api_wall))
                if verdicts[name][0]:
                    for stem, ref in truth_for(model.sources, parts).items():
                        if ref is None:
                            sdr_rows.append((name, score, stem, None, None, None))
                        else:
                            sdr_rows.append((name, score, stem, sdr(ref, ours[stem]),
                                             sdr(ref, theirs[stem]), sdr(ref, mix)))
            del model

        if sdr_rows:
            print("SDR (dB, plain global SDR, shifts=0; higher is better; `mix` = the mix "
                  "itself as the estimate):\n")
            print("| model | score | stem | daemon | demucs API | mix |\n| --- | --- | --- | ---: | ---: | ---: |")
            for name, score, stem, a, b, m in sdr_rows:
                if a is None:
                    print(f"| {name} | {score} | {stem} | (no part of the render is {stem}: not scored) | | |")
                else:
                    label = name if verdicts[name][1] else f"{name} (UNVERIFIED weights, --trust)"
                    print(f"| {label} | {score} | {stem} | {a:.2f} | {b:.2f} | {m:.2f} |")
            print()

        # 5. the equality check on the tiny random model (never scored)
        tiny_model = load_api_model("tinyrand", daemon.state / "models" / "tinyrand")
        parts, mix, clip = next(iter(truths.values()))
        cases = [(None, 0.25), (4.0, 0.5)]
        long_clip = None
        if True:  # > the daemon's 60 s window + margins: exercises its windowed path
            long_mix = np.concatenate([mix] * (-(-int(80 * 44100) // mix.shape[0])))[: 80 * 44100]
            long_clip = daemon.media / "long.mix.wav"
            sf.write(long_clip, long_mix, 44100, subtype="FLOAT")
        runs = [(clip, mix, seg, ov) for seg, ov in cases]
        runs.append((long_clip, long_mix, None, 0.25))
        for path, audio, seg, ov in runs:
            params = {"shifts": 0, "overlap": ov} | ({"segment": seg} if seg else {})
            log(f"tiny random model: daemon vs API, {audio.shape[0] / 44100:.0f} s, segment {seg}, overlap {ov}")
            job, wall = daemon.separate(path, "tinyrand", params, daemon.media / "out" / "tiny" / f"{seg}-{ov}-{audio.shape[0]}")
            t0 = time.perf_counter()
            theirs = api_separate(tiny_model, audio, segment=seg, overlap=ov)
            api_wall = time.perf_counter() - t0
            eq_rows.append(("tinyrand (random, built here)", Path(path).name,
                            f"{seg:g} s" if seg else f"default ({job['report']['segment']:g} s)", ov,
                            audio.shape[0] / 44100, max_diff(job_stems(job), theirs), wall,
                            api_wall, job["report"].get("windows")))

        print("Daemon vs demucs's API, same model, same input, shifts=0 (max |difference| over "
              "all stems and samples; the bridge should change nothing: <= 1e-4):\n")
        print("| model | input | segment | overlap | seconds | max abs diff | <= 1e-4 | daemon job (s) | API (s) |")
        print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |")
        for row in eq_rows:
            name, inp, seg, ov, secs, diff, wall, api_wall = row[:8]
            windows = f" ({int(row[8])} windows)" if len(row) > 8 and row[8] and row[8] > 1 else ""
            print(f"| {name} | {inp}{windows} | {seg} | {ov} | {secs:.1f} | {diff:.2e} | "
                  f"{'yes' if diff <= 1e-4 else '**NO**'} | {wall:.2f} | {api_wall:.2f} |")
        print("\nThe tiny random model's stems are noise: they check equality only and are "
              "never scored.")
    finally:
        daemon.stop()
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
