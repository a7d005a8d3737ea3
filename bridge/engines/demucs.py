"""The ``separate`` engine: stems with demucs, or a DSP harmonic/percussive split.

Models are the demucs models by their own names (htdemucs, htdemucs_ft,
htdemucs_6s, hdemucs_mmi, mdx_extra, ...) once installed in the model store
(a demucs repo folder: ``<name>.yaml`` + ``<sig>-<hash>.th``), loaded through
demucs's own ``get_model(name, repo=folder)``; plus ``hpss``, always there,
which needs no weights (``bridge.engines.hpss``).

What the bridge adds around ``demucs.apply.apply_model`` and nothing more:
resampling to the model's rate and back, mono in/out, demucs's own mix
normalisation, long files in bounded windows, stem subsets (a bag of models
runs only the members that contribute), two-stem mode, reproducible shifts,
progress and cancel. At ``shifts=0`` the stems equal ``apply_model``'s.

torch and demucs are imported when a model is first loaded, never at import.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.device import release_memory, usable_cpus
from ..core.engine import (Audio, Engine, EngineKind, InputSpec, ModelSpec, Output, Param,
                           PullPlan, RemoteFile, RunContext, RunResult)
from ..core.errors import Cancelled, InvalidArgument, MediaError, NotFound, Unavailable
from ..core.media import sha256_file
from ..dsp.resample import check_rates, resample_into, resampled_length
from . import hpss as hpss_dsp
from .demucs_batch import BatchPool
from .demucs_repo import NO_DEMUCS, facts, load_demucs, stage_folder, stage_package
from .demucs_repo import remote_dir as _remote_dir, remote_files

ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
URL_ENV = "STUDIO_BRIDGE_DEMUCS_URL"  # tests point pulls at a local HTTP server
LICENCE = "MIT (demucs)"
HPSS = "hpss"
HPSS_LICENCE = "none needed (DSP, no weights)"
SIDECAR = "bridge-separate.json"  # stems etc. readable without torch
FOUR = ("drums", "bass", "other", "vocals")
SIX = FOUR + ("guitar", "piano")
KNOWN_STEMS = SIX + hpss_dsp.STEMS
DESCRIPTIONS = {
    "htdemucs": "Hybrid Transformer Demucs v4, the default: drums, bass, other, vocals.",
    "htdemucs_ft": "htdemucs fine-tuned, a bag of 4 (one per stem): better, about 4x slower; "
                   "a stem subset runs only the members it needs.",
    "htdemucs_6s": "htdemucs with 6 stems: adds guitar and piano (piano is weak).",
    "hdemucs_mmi": "Hybrid Demucs v3, trained on MusDB plus 800 songs.",
    "mdx": "Demucs trained on MusDB HQ only (MDX 2021 track A winner).",
    "mdx_extra": "Demucs trained with extra data (MDX 2021 track B, 2nd).",
    "mdx_q": "mdx, quantized (smaller); needs the diffq package.",
    "mdx_extra_q": "mdx_extra, quantized (smaller); needs the diffq package.",
}
HPSS_DESCRIPTION = (
    "Harmonic/percussive split by median filtering of the spectrogram: a DSP split, not a "
    "neural separation, and no weights. Stems: harmonic (sustained tones) and percussive "
    "(hits, transients); they sum to the input. Any channel count and sample rate.")
# Long files run in windows of this much audio (plus margins) so the model's
# working memory is bounded whatever the length (demucs issue #231).
WINDOW_SECONDS = 60.0
CROSSFADE_SECONDS = 1.0
MAX_SHIFT_SECONDS = 0.5  # demucs.apply: shifts move the input by up to 0.5 s
CUDA_BATCH = 4  # segments per forward pass on a GPU unless asked otherwise


@dataclass
class Handle:
    """A loaded model: the demucs network (None for hpss) and its facts."""

    name: str
    model: Any = field(repr=False)
    device: str
    sources: tuple[str, ...]
    samplerate: int = 0
    audio_channels: int = 0
    segment: float = 0.0  # the model's own segment in seconds
    max_segment: float = math.inf  # transformer models cannot go longer
    members: int = 1
    extra: dict = field(default_factory=dict)


class SeparateEngine(Engine):
    """Stem separation with demucs, plus a weight-free harmonic/percussive split."""

    name = "separate"
    kind = EngineKind.MODEL
    version = "1"
    description = (
        "Separates a mix into stems with demucs (htdemucs: drums, bass, other, vocals; "
        "htdemucs_6s adds guitar and piano): pick stems, or two-stem mode (a stem and "
        "everything else), segment/overlap/shifts as in demucs; long files in bounded memory; "
        "stems keep the source's rate, channels and exact length. Model 'hpss' is a DSP "
        "harmonic/percussive split needing no weights.")
    params = (
        Param("stems", "string", "", "Comma-separated stems to write (default: all the model's). "
              "demucs: drums, bass, other, vocals (+ guitar, piano with htdemucs_6s); "
              "hpss: harmonic, percussive."),
        Param("two_stems", "string", "", "Write this stem and no_<stem> (everything else), "
              "like demucs --two-stems, e.g. 'vocals' for vocals / accompaniment."),
        Param("segment", "float", None, "Seconds of audio the model sees at once (default: "
              "the model's; transformer models cannot go longer than they were trained on).",
              minimum=1.0, maximum=600.0, unit="s"),
        Param("overlap", "float", 0.25, "Overlap between segments.", minimum=0.0, maximum=0.99),
        Param("shifts", "int", 1, "Random time shifts averaged (demucs's shift trick; "
              "0 = off, fastest; each one more costs a full pass).", minimum=0, maximum=20),
        Param("seed", "int", 0, "Seed for the shifts' random offsets: same seed, same stems.",
              minimum=0, maximum=2 ** 32 - 1),
        Param("segments_per_pass", "int", 0, "Segments stacked into one forward pass "
              f"(0 = automatic: {CUDA_BATCH} on CUDA, 1 on CPU, where batching gains nothing).",
              minimum=0, maximum=32),
        Param("precision", "choice", "auto", "Arithmetic of the forward pass: 'auto' (half on "
              "CUDA where the model allows it, float32 on CPU), 'float32', or 'half' (float16 "
              "on CUDA, bfloat16 on CPU). A model that fails or overflows in half falls back "
              "to float32, and the report says so.", choices=("auto", "float32", "half")),
    )
    inputs = (InputSpec("audio", description="The mix to separate."),)
    window_seconds = WINDOW_SECONDS  # instance-overridable (tests use short windows)

    # -- models ------------------------------------------------------------
    def models(self) -> list[ModelSpec]:
        specs = []
        for entry in self._entries():
            info = self._sidecar(entry.name)
            stems = ", ".join(info.get("sources", ())) or "unknown"
            text = entry.description or DESCRIPTIONS.get(entry.name, "demucs model")
            specs.append(ModelSpec(entry.name, entry.version, entry.size_bytes,
                                   entry.licence or LICENCE, f"{text} Stems: {stems}."))
        specs.append(ModelSpec(HPSS, "1", 0, HPSS_LICENCE, HPSS_DESCRIPTION))
        return specs

    def default_model(self) -> str:
        names = [e.name for e in self._entries()]
        if "htdemucs" in names:
            return "htdemucs"
        return names[0] if names else HPSS

    def _entries(self):
        return [e for e in self.store.entries(self.name)] if self.store is not None else []

    def _sidecar(self, name: str) -> dict:
        try:
            return json.loads((self.store.root / name / SIDECAR).read_text())
        except (OSError, ValueError, AttributeError):
            return {}

    def catalogue(self) -> list[str]:
        remote = _remote_dir()
        return sorted(p.stem for p in remote.glob("*.yaml")) if remote else []

    def pull_plan(self, name: str) -> PullPlan:
        """The files of demucs model ``name`` at demucs's own download site.

        Raises:
            Unavailable: demucs is not installed.
            InvalidArgument: demucs has no such model.
        """
        remote = _remote_dir()
        if remote is None:
            raise Unavailable(NO_DEMUCS)
        names = self.catalogue()
        if name not in names:
            raise InvalidArgument(f"demucs has no model '{name}' to pull; models: "
                                  f"{', '.join(names)}")
        import yaml

        text = (remote / f"{name}.yaml").read_bytes()
        sigs = yaml.safe_load(text)["models"]
        known = remote_files(remote / "files.txt")
        base = os.environ.get(URL_ENV) or ROOT_URL
        base = base if base.endswith("/") else base + "/"
        files = []
        for sig in sigs:
            root, filename = known[sig]
            checksum = Path(filename).stem.rpartition("-")[2] if "-" in filename else ""
            files.append(RemoteFile(url=base + root + filename, filename=filename,
                                    sha256_prefix=checksum))
        sources = SIX if name.endswith("_6s") else FOUR
        sidecar = json.dumps({"sources": list(sources), "members": len(sigs)}).encode()
        return PullPlan(name=name, files=files, licence=LICENCE,
                        extra={f"{name}.yaml": text, SIDECAR: sidecar},
                        description=DESCRIPTIONS.get(name, f"demucs model {name}."))

    def import_model(self, source, name: str, staged) -> dict:
        """Copy a demucs repo folder, or one ``.th`` package, into ``staged``.

        A folder must hold ``<name>.yaml`` (or exactly one yaml) and the
        ``.th`` files it lists, or a single ``.th``. A lone ``.th`` is named
        ``<sig>-<sha256 prefix>.th`` (so demucs checks it on every load) with
        ``<name>.yaml`` listing it. The result is loaded once, on CPU.

        Returns:
            {"version", "licence", "description"}.

        Raises:
            InvalidArgument: ``source`` is not a loadable demucs model.
        """
        source, staged = Path(source), Path(staged)
        if name == HPSS:
            raise InvalidArgument(f"'{HPSS}' is the built-in DSP split; import under another --name")
        if source.is_dir():
            stage_folder(source, name, staged)
        elif source.is_file() and source.suffix == ".th":
            stage_package(source, name, staged)
        else:
            raise InvalidArgument(
                f"'{source}' is not a demucs model: give a demucs repo folder (<name>.yaml and "
                f"<sig>-<hash>.th files) or one .th model package")
        try:
            model = load_demucs(name, staged)
        except Unavailable as exc:
            raise InvalidArgument(f"'{source}' does not load as a demucs model: "
                                  f"{exc.message.split(': ', 1)[-1]}") from None
        info = facts(model)
        (staged / SIDECAR).write_text(json.dumps(info))
        del model
        digest = hashlib.sha256()
        for path in sorted(p for p in staged.iterdir() if p.suffix in (".th", ".yaml")):
            digest.update(path.name.encode() + b"\0" + sha256_file(path).encode())
        kind = f"bag of {info['members']}" if info["members"] > 1 else "single model"
        return {"version": digest.hexdigest()[:12], "licence": LICENCE,
                "description": f"demucs {info['klass']} ({kind}, {info['samplerate']} Hz) "
                               f"imported from {source}."}

    # -- lifecycle ---------------------------------------------------------
    def _load(self, model: str, device: str) -> Handle:
        if model == HPSS:
            return Handle(HPSS, None, "cpu", hpss_dsp.STEMS)
        folder = self.store.path(model) if self.store is not None else None
        if folder is None:
            raise NotFound(f"model '{model}' is not installed (no model store)")
        net = load_demucs(model, folder)
        import torch

        net.to(torch.device(device)).eval()
        info = facts(net)
        return Handle(model, net, device, tuple(net.sources), int(net.samplerate),
                      int(net.audio_channels), info["segment"], info["max_segment"],
                      info["members"])

    def _unload(self, handle: Handle) -> None:
        handle.model = None
        release_memory(handle.device)

    # -- validation ----------------------------------------------------------
    def _validate(self, values: dict) -> dict:
        known = set(KNOWN_STEMS)
        for entry in self._entries():
            known.update(self._sidecar(entry.name).get("sources", ()))
        stems = _stem_list(values.get("stems"))
        two = (values.get("two_stems") or "").strip()
        if stems and two:
            raise InvalidArgument("give either 'stems' or 'two_stems', not both")
        for stem in stems + ([two] if two else []):
            if stem not in known:
                raise InvalidArgument(f"unknown stem '{stem}'; stems: {', '.join(sorted(known))}")
        return {**values, "stems": ",".join(stems), "two_stems": two}

    def _check_model(self, model: str, values) -> None:
        """The stems asked for must be the model's own: known at submit from its sidecar."""
        sources = list(hpss_dsp.STEMS) if model == HPSS else self._sidecar(model).get("sources")
        wanted = _stem_list(values.get("stems")) + ([values["two_stems"]] if values.get("two_stems") else [])
        missing = [stem for stem in wanted if sources and stem not in sources]
        if missing:
            raise InvalidArgument(f"model '{model}' has no stem '{missing[0]}'; its stems: "
                                  f"{', '.join(sources)}; pick from those or another model")

    # -- running -------------------------------------------------------------
    def _run(self, handle: Handle, inputs, params, ctx: RunContext) -> RunResult:
        audio = inputs["audio"]
        groups = _groups(handle, params)
        started = time.monotonic()
        if handle.name == HPSS:
            outputs, report = self._run_hpss(audio, groups, ctx)
        else:
            stopped = None
            try:
                outputs, report = _Separation(handle, audio, groups, params, ctx,
                                              self.window_seconds).run()
            except Cancelled as exc:
                # Raised again below, outside this block: the original's traceback
                # (and __context__) would keep demucs's frames and their tensors
                # alive until the job record is stored.
                stopped = exc.message
            finally:
                if handle.device.startswith("cuda"):
                    import torch

                    torch.cuda.empty_cache()
            if stopped is not None:
                raise Cancelled(stopped)
        report["seconds"] = round(time.monotonic() - started, 3)
        return RunResult(outputs, report)

    @staticmethod
    def _run_hpss(audio: Audio, groups, ctx) -> tuple[list[Output], dict]:
        ctx.progress(0.05, "separating")

        def progress(fraction: float) -> None:
            ctx.check()
            ctx.progress(0.05 + 0.9 * fraction, "separating")

        parts = hpss_dsp.hpss(audio.samples, audio.sample_rate, progress, ctx.array)
        # Two parts: every group is one of them (no_harmonic is the percussive part).
        outputs = [Output(kind, Audio(parts[idx[0]], audio.sample_rate, audio.subtype,
                                      audio.name)) for kind, idx in groups]
        report = {"model": HPSS, "method": "median-filtering HPSS (DSP, not neural)",
                  "sources": list(hpss_dsp.STEMS), "stems": [k for k, _ in groups],
                  "device": "cpu"}
        return outputs, report


class _Separation:
    """One demucs run: prepare the mix, separate window by window, restore."""

    def __init__(self, handle: Handle, audio: Audio, groups, params, ctx, window_seconds):
        self.handle, self.audio, self.groups, self.ctx = handle, audio, groups, ctx
        self.shifts, self.overlap = int(params["shifts"]), float(params["overlap"])
        self.seed = int(params["seed"])
        self.segment = params.get("segment")
        self.window_seconds = window_seconds
        cuda = handle.device.startswith("cuda")
        self.batch = int(params.get("segments_per_pass") or (CUDA_BATCH if cuda else 1))
        precision = params.get("precision") or "auto"
        self.half = precision == "half" or (precision == "auto" and cuda)
        self.precision = "half" if self.half else "float32"
        self.warnings: list[str] = []

    def run(self) -> tuple[list[Output], dict]:
        import torch

        h, audio = self.handle, self.audio
        if self.segment is not None and self.segment > h.max_segment:
            raise InvalidArgument(f"segment {self.segment:g} s is longer than model '{h.name}' "
                                  f"allows ({h.max_segment:g} s, what it was trained on)")
        _check_channels(audio, h)
        if h.device == "cpu":
            # One model job runs per device at a time, so it may use every core
            # this process is allowed (torch's default counts physical cores
            # and ignores CPU affinity / container limits).
            torch.set_num_threads(usable_cpus())
        needed = sorted({i for _, idx in self.groups for i in idx})
        model, members = _sub_bag(h.model, needed)
        with torch.inference_mode():
            mix = self._prepare()
            mean, std = _mix_stats(mix)
            estimates, windows = self._separate(torch, model, mix, mean, std, len(members))
            del mix
            outputs = self._restore(estimates)
        report = {"model": h.name, "sources": list(h.sources),
                  "stems": [kind for kind, _ in self.groups],
                  "segment": float(self.segment or h.segment), "overlap": self.overlap,
                  "shifts": self.shifts, "seed": self.seed, "device": h.device,
                  "windows": windows, "bag_members_run": len(members),
                  "bag_members": h.members, "segments_per_pass": self.batch,
                  "precision": self.precision}
        if h.samplerate != audio.sample_rate:
            report["resampled"] = f"{audio.sample_rate} Hz -> {h.samplerate} Hz -> back"
        if self.warnings:
            report["warnings"] = self.warnings
        return outputs, report

    def _prepare(self):
        """The mix at the model's rate, (frames, source channels); disk-backed when long."""
        h, audio = self.handle, self.audio
        if audio.sample_rate == h.samplerate:
            return audio.samples
        try:
            check_rates(audio.sample_rate, h.samplerate)
        except ValueError as exc:
            raise MediaError(f"audio at {audio.sample_rate} Hz cannot be separated by model "
                             f"'{h.name}' ({h.samplerate} Hz): {exc}") from None
        self.ctx.progress(0.01, "resampling")
        mix = self.ctx.array(resampled_length(audio.frames, audio.sample_rate, h.samplerate),
                             audio.channels)
        resample_into(audio.samples, audio.sample_rate, h.samplerate, mix, check=self.ctx.check)
        return mix

    def _separate(self, torch, model, mix, mean, std, members):
        """Run apply_model window by window; crossfade each group's sum into its stem."""
        from demucs.apply import apply_model

        h = self.handle
        length = mix.shape[0]
        segment = float(self.segment or h.segment)
        seg = int(h.samplerate * segment)
        stride = max(1, int((1 - self.overlap) * seg))
        fade = int(CROSSFADE_SECONDS * h.samplerate) // 2 * 2
        reach = seg + fade // 2 + (int(MAX_SHIFT_SECONDS * h.samplerate) if self.shifts else 0)
        margin = -(-reach // stride) * stride
        core = max(-(-max(stride, fade) // stride) * stride,
                   round(self.window_seconds * h.samplerate / stride) * stride)
        spans = _spans(length, core, margin, fade)
        # At the model's rate; disk-backed when long, so only a window is in RAM.
        out = [self.ctx.array(length, mix.shape[1]) for _ in self.groups]
        rng = random.Random(self.seed)
        for number, (lo, hi, keep_lo, keep_hi, ramp_in, ramp_out) in enumerate(spans):
            self.ctx.check()
            chunk = torch.from_numpy(np.array(mix[lo:hi].T, dtype=np.float32, order="C"))
            chunk = ((chunk.expand(h.audio_channels, -1) - mean) / std)[None]
            callback = self._callback(number, len(spans), hi - lo, members, stride)
            pool = self._pool()
            with _seeded(rng):
                est = apply_model(model, chunk, shifts=self.shifts, split=True,
                                  overlap=self.overlap, segment=self.segment, progress=False,
                                  device=h.device, callback=callback, pool=pool)
            if pool is not None:  # a fallback to float32 holds for the rest of the job
                self.half = pool.half
            del chunk
            weight = _weights(keep_lo, keep_hi, ramp_in, ramp_out, fade)
            for g, (_, idx) in enumerate(self.groups):
                part = est[0, idx].sum(0)[:, keep_lo - lo:keep_hi - lo] * std + len(idx) * mean
                if mix.shape[1] < part.shape[0]:  # mono source: average back to mono
                    part = part.mean(0, keepdim=True)
                if weight is not None:
                    part = part * weight
                out[g][keep_lo:keep_hi] += part.T.numpy()
            del est
        return out, len(spans)

    def _pool(self):
        """Segments for demucs's split loop, ``self.batch`` per forward pass."""
        if self.batch == 1 and not self.half:
            return None  # demucs's own one-at-a-time path, untouched

        def fallback(reason: str) -> None:
            self.precision = "float32"
            self.warnings.append(f"{reason}; model '{self.handle.name}' ran in float32")
        return BatchPool(self.batch, self.half, fallback)

    def _callback(self, number, count, length, members, stride):
        shifts = max(self.shifts, 1)

        def callback(info: dict) -> None:
            self.ctx.check()  # raises Cancelled; apply_model lets it through
            if info.get("state") != "end":
                return
            inner = min(1.0, (info.get("segment_offset", 0) + stride) / max(length, 1))
            model = info.get("model_idx_in_bag", 0)
            done = (model + (info.get("shift_idx", 0) + inner) / shifts) / max(members, 1)
            self.ctx.progress(0.05 + 0.85 * (number + min(done, 1.0)) / count, "separating")
        return callback

    def _restore(self, estimates) -> list[Output]:
        """Back to the source's rate and exact length (channels already match)."""
        h, audio = self.handle, self.audio
        outputs = []
        for g, (kind, _) in enumerate(self.groups):
            self.ctx.check()
            self.ctx.progress(0.9 + 0.1 * g / len(self.groups), "restoring")
            stem, estimates[g] = estimates[g], None
            if audio.sample_rate != h.samplerate:
                back = self.ctx.array(audio.frames, audio.channels)
                resample_into(stem, h.samplerate, audio.sample_rate, back, check=self.ctx.check)
                stem = back
            outputs.append(Output(kind, Audio(stem, audio.sample_rate, audio.subtype,
                                              audio.name)))
        return outputs


def _mix_stats(mix) -> tuple[float, float]:
    """Mean and standard deviation of the mono mix, as demucs normalises (blockwise)."""
    total = squares = 0.0
    count = mix.shape[0]
    for start in range(0, count, 1 << 20):
        ref = np.asarray(mix[start:start + (1 << 20)], dtype=np.float64).mean(1)
        total += float(ref.sum())
        squares += float(np.square(ref).sum())
    mean = total / max(count, 1)
    var = max(0.0, squares / max(count, 1) - mean * mean) * count / max(count - 1, 1)
    return mean, math.sqrt(var) + 1e-8


def _sub_bag(model, needed: list[int]):
    """The bag members whose weights reach the needed sources (all for a single model)."""
    from demucs.apply import BagOfModels

    if not isinstance(model, BagOfModels):
        return model, [model]
    keep = [i for i, row in enumerate(model.weights) if any(row[k] for k in needed)]
    if len(keep) == len(model.models):
        return model, list(model.models)
    members = [model.models[i] for i in keep]
    return BagOfModels(members, [model.weights[i] for i in keep]), members


class _ThreadRandom:
    """Stands in for the ``random`` module inside ``demucs.apply``.

    ``apply_model`` draws its shift offsets from the global ``random``; this
    gives each thread its own seeded generator while a job runs, so the same
    seed gives the same stems without reseeding the process-wide generator.
    Inference draws nothing else (HTDemucs's random augmentations are
    training-only), so torch's generator is left alone.
    """

    def __init__(self):
        self._local = threading.local()

    def randint(self, a: int, b: int) -> int:
        rng = getattr(self._local, "rng", None)
        return (rng or random).randint(a, b)

    def __getattr__(self, name: str):
        return getattr(random, name)


_RANDOM = _ThreadRandom()


@contextlib.contextmanager
def _seeded(rng: random.Random):
    import demucs.apply

    if demucs.apply.random is not _RANDOM:
        demucs.apply.random = _RANDOM
    _RANDOM._local.rng = rng
    try:
        yield
    finally:
        _RANDOM._local.rng = None


# -- helpers -------------------------------------------------------------------
def _check_channels(audio: Audio, h: Handle) -> None:
    if audio.channels > h.audio_channels:
        raise MediaError(
            f"audio has {audio.channels} channels; demucs model '{h.name}' separates at most "
            f"{h.audio_channels} and stems keep the source's channels, so it is refused rather "
            f"than silently downmixed; export a stereo (or mono) mix and separate that, or use "
            f"model 'hpss', which splits any number of channels")


def _stem_list(text) -> list[str]:
    out = []
    for part in str(text or "").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def _groups(h: Handle, params) -> list[tuple[str, list[int]]]:
    """(output kind, source indices summed into it) for the requested stems."""
    sources = list(h.sources)
    wanted = _stem_list(params.get("stems"))
    two = (params.get("two_stems") or "").strip()
    for stem in wanted + ([two] if two else []):
        if stem not in sources:
            raise InvalidArgument(f"model '{h.name}' has no stem '{stem}'; its stems: "
                                  f"{', '.join(sources)}")
    if two:
        rest = [i for i, s in enumerate(sources) if s != two]
        return [(two, [sources.index(two)]), (f"no_{two}", rest)]
    return [(s, [sources.index(s)]) for s in (wanted or sources)]


def _spans(length: int, core: int, margin: int, fade: int):
    """Windows: (lo, hi) processed, (keep_lo, keep_hi) used, ramp in/out flags.

    Window starts are multiples of demucs's stride, so its segments fall where
    a single pass puts them; margins cover a segment, half a crossfade and the
    largest shift, so the kept part matches a single pass (exactly at shifts=0).
    """
    if length <= core + margin:
        return [(0, length, 0, length, False, False)]
    half = fade // 2
    count = -(-length // core)
    if length - (count - 1) * core <= half:  # a sliver at the end joins the last window
        count -= 1
    spans = []
    for k in range(count):
        start, stop = k * core, min(length, (k + 1) * core)
        keep_lo = start - half if k else 0
        keep_hi = stop + half if k < count - 1 else length
        spans.append((max(0, start - margin), min(length, stop + margin), keep_lo, keep_hi,
                      k > 0, k < count - 1))
    return spans


def _weights(keep_lo, keep_hi, ramp_in, ramp_out, fade):
    """Linear crossfade weights over a kept span (None when no ramp)."""
    if not (ramp_in or ramp_out):
        return None
    import torch

    weight = torch.ones(keep_hi - keep_lo)
    ramp = (torch.arange(fade, dtype=torch.float32) + 0.5) / fade
    if ramp_in:
        weight[:fade] = ramp
    if ramp_out:
        weight[-fade:] = weight[-fade:] * ramp.flip(0)
    return weight
