"""The ``generate`` engine: music from a text prompt with audiocraft's MusicGen, tempo-locked.

Models are MusicGen checkpoints in audiocraft's released format (a folder with
``state_dict.bin`` and ``compression_state_dict.bin``) installed in the model
store, loaded with ``MusicGen.get_pretrained(folder)``: the path real weights
take. What the bridge adds: seeds (reported; the same seed and parameters give
the same audio), variations as one batch, melody conditioning and
continuation from a clip, the tempo lock (exact whole bars at the host's rate,
the downbeat found in the audio and put at sample 0, loopable seams;
``bridge.dsp.tempo``), progress per generated step and cancel within a step.
Longer than the model's 30 s context runs through audiocraft's own windowed
continuation (``extend_stride``).

torch and audiocraft are imported when a model is first loaded, never at import.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.device import release_memory, usable_cpus
from ..core.engine import (Audio, Engine, EngineKind, InputSpec, ModelSpec, Output, Param,
                           PullPlan, RunContext, RunResult)
from ..core.errors import Cancelled, InvalidArgument, MediaError, NotFound, Unavailable
from ..core.media import sha256_file
from ..dsp import tempo
from ..dsp.resample import resample_into, resampled_length
from . import hf_hub

LICENCE = "CC-BY-NC 4.0 (MusicGen weights: non-commercial use only)"
FILES = ("state_dict.bin", "compression_state_dict.bin")
# audiocraft's released models, each the hub repository facebook/<name>
CATALOGUE = {
    "musicgen-small": "300 M, text to music, mono 32 kHz.",
    "musicgen-medium": "1.5 B, text to music, mono 32 kHz.",
    "musicgen-large": "3.3 B, text to music, mono 32 kHz.",
    "musicgen-melody": "1.5 B, text and melody to music, mono 32 kHz.",
    "musicgen-melody-large": "3.3 B, text and melody to music, mono 32 kHz.",
    "musicgen-stereo-small": "300 M, text to music, stereo 32 kHz.",
    "musicgen-stereo-medium": "1.5 B, text to music, stereo 32 kHz.",
    "musicgen-stereo-large": "3.3 B, text to music, stereo 32 kHz.",
    "musicgen-stereo-melody": "1.5 B, text and melody to music, stereo 32 kHz.",
    "musicgen-stereo-melody-large": "3.3 B, text and melody to music, stereo 32 kHz.",
}
# The text encoder every released MusicGen names (xp.cfg conditioners.description.t5.name):
# pulled with the weights into <model>/t5-base, so loading never looks anything up.
T5_REPO, T5_NAME = "google-t5/t5-base", "t5-base"
T5_FILES = ["config.json", "model.safetensors", "tokenizer.json"]
MAX_PROMPT_CHARS = 2000
MAX_SECONDS = 300.0  # 5 minutes: beyond that windowed continuation drifts and takes hours on CPU
EXTEND_STRIDE = 18.0  # audiocraft's default: seconds added per window past the context
CONTEXT_ROOM = 5.0  # seconds a continuation clip must leave free in the model's context
_NO_AUDIOCRAFT = ("audiocraft is not installed; run installers/setup.sh (it installs audiocraft "
                  "1.3.0 beside this torch), then `studio-bridge doctor`")


@dataclass
class Handle:
    """A loaded MusicGen and its facts."""

    name: str
    model: Any = field(repr=False)
    device: str
    sample_rate: int
    channels: int
    max_duration: float
    melody: bool


class GenerateEngine(Engine):
    """Text-to-music with MusicGen: seeds, variations, melody, continuation, tempo lock."""

    name = "generate"
    kind = EngineKind.MODEL
    version = "1"
    description = (
        "Generates music from a text prompt with audiocraft's MusicGen: seed, sampling "
        "controls, variations in one batch, melody conditioning (melody models) or "
        "continuation from a clip. With bpm and bars the result is exactly that many bars "
        "at the host's rate, the downbeat at sample 0 (found by onset analysis), and "
        "loopable with a crossfaded seam.")
    params = (
        Param("prompt", "string", "", "What to generate, e.g. 'warm rhodes chords, lo-fi'."),
        Param("duration", "float", 10.0, "Seconds to generate when no bpm/bars are given.",
              minimum=0.5, maximum=MAX_SECONDS, unit="s"),
        Param("bpm", "float", None, "Tempo: with bars, the output is exactly bars x "
              "beats_per_bar beats long and the tempo goes into the prompt.",
              minimum=20.0, maximum=300.0, unit="BPM"),
        Param("bars", "int", None, "Whole bars to generate (needs bpm).", minimum=1, maximum=256),
        Param("beats_per_bar", "int", 4, "Beats per bar (the time signature's numerator).",
              minimum=1, maximum=16),
        Param("loop", "bool", False, "Make the end run into the start without a click "
              "(the following material is crossfaded into the head)."),
        Param("sample_rate", "int", 0, "Output rate in Hz (0: the clip's rate, else 48000).",
              minimum=0, maximum=192000, unit="Hz"),
        Param("seed", "int", None, "Same seed and parameters give the same audio; none: a "
              "random seed, reported.", minimum=0, maximum=2 ** 31 - 1),
        Param("variations", "int", 1, "Variations generated as one batch.", minimum=1,
              maximum=8),
        Param("temperature", "float", 1.0, "Sampling temperature.", minimum=0.01, maximum=5.0),
        Param("top_k", "int", 250, "Sample from the k likeliest tokens (0: off).", minimum=0,
              maximum=2048),
        Param("top_p", "float", 0.0, "Nucleus sampling threshold (0: off; overrides top_k).",
              minimum=0.0, maximum=1.0),
        Param("cfg", "float", 3.0, "Classifier-free guidance: how strongly the prompt steers.",
              minimum=0.0, maximum=20.0),
    )
    inputs = (
        InputSpec("melody", required=False,
                  description="A clip whose melody (chroma) the music follows; melody models."),
        InputSpec("continue", required=False,
                  description="A clip to continue from; the output is what follows it."),
    )

    # -- models ------------------------------------------------------------
    def models(self) -> list[ModelSpec]:
        entries = self.store.entries(self.name) if self.store is not None else []
        return [ModelSpec(e.name, e.version, e.size_bytes, e.licence or LICENCE,
                          e.description or "MusicGen model.") for e in entries]

    def catalogue(self) -> list[str]:
        return list(CATALOGUE)

    def pull_plan(self, name: str) -> PullPlan:
        """MusicGen ``name``'s checkpoint and the T5 encoder it conditions on, from the hub.

        Raises:
            InvalidArgument: not one of audiocraft's released models.
            Unavailable: the hub cannot be reached.
        """
        if name not in CATALOGUE:
            raise InvalidArgument(f"no MusicGen model '{name}' to pull; models: "
                                  f"{', '.join(CATALOGUE)}")
        files = hf_hub.remote_files(f"facebook/{name}", list(FILES))
        files += hf_hub.remote_files(T5_REPO, T5_FILES, into=T5_NAME)
        return PullPlan(name=name, files=files, licence=LICENCE,
                        description=f"MusicGen {CATALOGUE[name]} With its T5 text encoder.")

    def default_model(self) -> str:
        names = [m.name for m in self.models()]
        for preferred in ("musicgen-small", "musicgen-medium", "musicgen-melody"):
            if preferred in names:
                return preferred
        return names[0] if names else ""

    def import_model(self, source, name: str, staged) -> dict:
        """Copy a MusicGen folder in audiocraft's checkpoint format and prove it loads.

        Raises:
            InvalidArgument: not such a folder, or it does not load.
        """
        source, staged = Path(source), Path(staged)
        missing = [f for f in FILES if not (source / f).is_file()] if source.is_dir() else FILES
        if missing:
            raise InvalidArgument(
                f"'{source}' is not a MusicGen checkpoint folder: it needs {', '.join(FILES)} "
                f"(missing: {', '.join(missing)}), as in audiocraft's released models")
        digest = hashlib.sha256()
        for filename in FILES:
            shutil.copyfile(source / filename, staged / filename)
            digest.update(filename.encode() + b"\0" + sha256_file(staged / filename).encode())
        if (source / T5_NAME).is_dir():  # the text encoder, when the folder brings it
            shutil.copytree(source / T5_NAME, staged / T5_NAME)
        try:
            handle = self._load_folder(name, staged, "cpu")
        except Unavailable as exc:
            raise InvalidArgument(f"'{source}' does not load as MusicGen: {exc.message}") from None
        kind = "melody" if handle.melody else "text"
        description = (f"MusicGen ({kind}, {'stereo' if handle.channels == 2 else 'mono'}, "
                       f"{handle.sample_rate} Hz) imported from {source}.")
        del handle
        release_memory("cpu")
        return {"version": digest.hexdigest()[:12], "licence": LICENCE,
                "description": description}

    # -- lifecycle ---------------------------------------------------------
    def _load(self, model: str, device: str) -> Handle:
        folder = self.store.path(model) if self.store is not None else None
        if folder is None:
            raise NotFound(f"model '{model}' is not installed (no model store)")
        return self._load_folder(model, folder, device)

    def _load_folder(self, name: str, folder: Path, device: str) -> Handle:
        musicgen = _import_musicgen()
        try:
            with self._stem_model_from_store(), _text_encoder_from(folder, self.store), \
                    warnings.catch_warnings():
                # audiocraft's EnCodec uses torch's older weight_norm; it works, it warns
                warnings.filterwarnings("ignore", ".*weight_norm.*deprecated", FutureWarning)
                net = musicgen.MusicGen.get_pretrained(str(folder), device=device)
        except (MemoryError, Unavailable, NotFound):
            raise
        except Exception as exc:
            if "OutOfMemory" in type(exc).__name__:
                raise
            raise Unavailable(
                f"model '{name}' in {folder} cannot be loaded: {type(exc).__name__}: {exc}; its "
                f"files are damaged or not MusicGen's; remove it (`studio-bridge models remove "
                f"{name}`) and import or pull it again") from None
        conditioners = net.lm.condition_provider.conditioners
        return Handle(name, net, device, int(net.sample_rate), int(net.audio_channels),
                      float(net.max_duration), "self_wav" in conditioners)

    @contextlib.contextmanager
    def _stem_model_from_store(self):
        """Melody models build a demucs 'htdemucs' to strip drums and bass from the melody
        clip; audiocraft fetches it from the hub. Serve it from the model store instead."""
        import demucs.pretrained

        real = demucs.pretrained.get_model

        def from_store(name, repo=None):
            if repo is not None or name != "htdemucs":
                return real(name, repo=repo)
            folder = self.store.path("htdemucs") if self.store is not None else None
            if folder is None:
                raise NotFound("melody models need demucs's 'htdemucs' to isolate the melody; "
                               "install it with `studio-bridge models pull htdemucs`")
            from .demucs_repo import load_demucs

            return load_demucs("htdemucs", folder)

        demucs.pretrained.get_model = from_store
        try:
            yield
        finally:
            demucs.pretrained.get_model = real

    def _unload(self, handle: Handle) -> None:
        handle.model = None
        release_memory(handle.device)

    # -- validation ----------------------------------------------------------
    def _validate(self, values: dict) -> dict:
        prompt = (values.get("prompt") or "").strip()
        if not prompt:
            raise InvalidArgument("prompt is empty; describe the music, e.g. 'warm rhodes "
                                  "chords, lo-fi hip hop'")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidArgument(f"prompt is {len(prompt)} characters; at most "
                                  f"{MAX_PROMPT_CHARS} are used by the text encoder; shorten it")
        bpm, bars = values.get("bpm"), values.get("bars")
        if (bpm is None) != (bars is None):
            raise InvalidArgument("give bpm and bars together (e.g. bpm 120, bars 8), or "
                                  "neither and a duration")
        if bpm is not None:
            seconds = bars * values["beats_per_bar"] * 60.0 / bpm
            if seconds > MAX_SECONDS:
                raise InvalidArgument(
                    f"{bars} bars of {values['beats_per_bar']} at {bpm:g} BPM is {seconds:.0f} s; "
                    f"at most {MAX_SECONDS:.0f} s can be generated; ask for fewer bars")
        if values.get("loop") and bpm is None:
            raise InvalidArgument("loop needs bpm and bars (a loop is whole bars long)")
        if values.get("seed") is None:  # drawn here so the cache key and the report carry it
            values = {**values, "seed": secrets.randbelow(2 ** 31)}
        return {**values, "prompt": prompt}

    # -- running -------------------------------------------------------------
    def _run(self, handle: Handle, inputs, params, ctx: RunContext) -> RunResult:
        started = time.monotonic()
        melody, cont = inputs.get("melody"), inputs.get("continue")
        _check_inputs(handle, melody, cont, self.store)
        clip = cont if cont is not None else melody
        rate = params["sample_rate"] or (clip.sample_rate if clip is not None else 48000)
        grid = None
        if params["bpm"] is not None:
            grid = tempo.Grid(params["bpm"], params["bars"], params["beats_per_bar"],
                              handle.sample_rate)
        text = _conditioning_text(params["prompt"], params["bpm"])
        seconds = (tempo.generation_seconds(grid, params["loop"], align=cont is None)
                   if grid else params["duration"])
        if cont is not None:
            _check_context(handle, cont)
        stopped = None
        try:
            wavs = _generate(handle, text, seconds, params, melody, cont, ctx)
        except Cancelled as exc:  # raised again outside, without audiocraft's frames
            stopped = exc.message
        if stopped is not None:
            raise Cancelled(stopped)
        ctx.progress(0.95, "aligning")
        outputs, placed = [], []
        for index, wav in enumerate(wavs):
            samples, info = _place(wav, handle, grid, params["loop"], cont is not None)
            samples = _to_rate(samples, handle.sample_rate, rate, ctx, grid)
            kind = str(params["seed"]) if len(wavs) == 1 else f"{params['seed']}-{index + 1}"
            outputs.append(Output(kind, Audio(samples, rate, "", tempo.slug(params["prompt"]))))
            placed.append(info)
        report = {"model": handle.name, "prompt": params["prompt"], "conditioning": text,
                  "seed": params["seed"], "variations": len(wavs), "sample_rate": rate,
                  "seconds_generated": round(seconds, 3), "device": handle.device,
                  "sampling": {k: params[k] for k in ("temperature", "top_k", "top_p", "cfg")},
                  "placement": placed}
        if grid:
            report["tempo"] = {"bpm": params["bpm"], "bars": params["bars"],
                               "beats_per_bar": params["beats_per_bar"],
                               "frames": outputs[0].audio.frames,
                               "seconds": round(outputs[0].audio.frames / rate, 6),
                               "loop": bool(params["loop"])}
        report["seconds"] = round(time.monotonic() - started, 3)
        return RunResult(outputs, report, name=tempo.slug(params["prompt"]))


@contextlib.contextmanager
def _text_encoder_from(folder: Path, store):
    """audiocraft loads T5 by its hub name; give it the copy pulled with the model
    (or with another installed MusicGen), never a lookup."""
    from audiocraft.modules import conditioners

    def local(name: str) -> str:
        candidates = [Path(folder) / name]
        if store is not None:
            candidates += [store.root / e.name / name for e in store.entries("generate")]
        for candidate in candidates:
            if (candidate / "config.json").is_file():
                return str(candidate)
        raise NotFound(f"the text encoder '{name}' this MusicGen needs is not installed; "
                       f"`studio-bridge models pull musicgen-small` fetches it with the weights "
                       f"(or put a '{name}' folder from the hub into the model's folder)")

    class _From:  # stands in for a transformers class: from_pretrained(name) -> local copy
        def __init__(self, real):
            self.real = real

        def from_pretrained(self, name, *args, **kwargs):
            return self.real.from_pretrained(local(name), *args, **kwargs)

    saved = conditioners.T5Tokenizer, conditioners.T5EncoderModel
    conditioners.T5Tokenizer, conditioners.T5EncoderModel = (_From(c) for c in saved)
    try:
        yield
    finally:
        conditioners.T5Tokenizer, conditioners.T5EncoderModel = saved


# -- generation -----------------------------------------------------------------
def _generate(handle: Handle, text: str, seconds: float, params, melody, cont, ctx):
    """The batch of waveforms at the model's rate: (variations, channels, samples) numpy."""
    import torch

    net = handle.model
    count = params["variations"]
    if handle.device == "cpu":  # one model job per device at a time: it may use every core
        torch.set_num_threads(usable_cpus())
    if cont is not None:  # audiocraft's duration counts the clip it continues
        seconds += _prompt_samples(cont, handle) / handle.sample_rate
    net.set_generation_params(use_sampling=True, top_k=params["top_k"], top_p=params["top_p"],
                              temperature=params["temperature"], cfg_coef=params["cfg"],
                              duration=seconds, extend_stride=EXTEND_STRIDE)
    total = max(1, int(seconds * net.frame_rate))

    def progress(done: int, _chunk_total: int) -> None:
        ctx.check()  # raises Cancelled inside the step loop: stops within a step
        ctx.progress(0.05 + 0.9 * min(1.0, done / total), "generating")

    net.set_custom_progress_callback(progress)
    ctx.progress(0.05, "generating")
    with torch.random.fork_rng(devices=_rng_devices(handle)), torch.inference_mode():
        torch.manual_seed(params["seed"])
        descriptions = [text or None] * count
        if cont is not None:
            clip = _tensor(cont, count)
            out = net.generate_continuation(clip, cont.sample_rate, descriptions, progress=True)
            out = out[..., _prompt_samples(cont, handle):]
        elif melody is not None:
            out = net.generate_with_chroma(descriptions, _tensor(melody, count),
                                           melody.sample_rate, progress=True)
        else:
            out = net.generate(descriptions, progress=True)
    net.set_custom_progress_callback(None)
    return out.float().cpu().numpy()


def _rng_devices(handle: Handle) -> list:
    if handle.device.startswith("cuda"):
        import torch

        return [torch.device(handle.device).index or 0]
    return []


def _tensor(audio: Audio, count: int):
    """A clip as audiocraft takes it: (batch, channels, samples) float32."""
    import torch

    wav = torch.from_numpy(np.array(audio.samples.T, dtype=np.float32, order="C"))
    return wav[None].expand(count, -1, -1)


def _prompt_samples(cont: Audio, handle: Handle) -> int:
    return resampled_length(cont.frames, cont.sample_rate, handle.sample_rate)


def _place(wav: np.ndarray, handle: Handle, grid, loop: bool, continued: bool):
    """One variation as (samples, channels) at the model's rate: cut to the grid if any."""
    samples = np.ascontiguousarray(wav.T, dtype=np.float32)
    if grid is None:
        return samples, {"aligned": "none (no bpm/bars)"}
    fade = grid.loop_fade() if loop else 0
    if continued:  # the clip ended on the host's grid: what follows starts on it
        offset, info = 0, {"aligned": "continuation: starts where the clip ends"}
    else:
        latest = len(samples) - grid.frames - fade
        offset, strength = tempo.find_downbeat(samples, grid, latest)
        info = {"aligned": "downbeat by onset analysis",
                "downbeat_at_s": round(offset / handle.sample_rate, 4),
                "beat_strength": round(strength, 2)}
    return tempo.cut(samples, offset, grid.frames, fade), info


def _to_rate(samples: np.ndarray, old: int, new: int, ctx: RunContext, grid) -> np.ndarray:
    """The model's rate to the host's, keeping the exact bar length at the new rate."""
    if old == new:
        return samples
    frames = (tempo.Grid(grid.bpm, grid.bars, grid.beats_per_bar, new).frames if grid
              else resampled_length(len(samples), old, new))
    out = ctx.array(frames, samples.shape[1])
    resample_into(samples, old, new, out, check=ctx.check)
    return out


# -- checks ------------------------------------------------------------------------
def _check_inputs(handle: Handle, melody, cont, store) -> None:
    if melody is not None and cont is not None:
        raise InvalidArgument("give a melody clip or a clip to continue, not both")
    if melody is not None and not handle.melody:
        melodic = [e.name for e in (store.entries("generate") if store else [])
                   if "melody" in (e.description or "")]
        raise InvalidArgument(
            f"model '{handle.name}' has no melody conditioning; melody models: "
            f"{', '.join(melodic) or 'none installed (musicgen-melody)'}")
    for clip in (melody, cont):
        if clip is not None and clip.channels > 2:
            raise MediaError(f"the clip has {clip.channels} channels; give a mono or stereo "
                             f"clip")


def _check_context(handle: Handle, cont: Audio) -> None:
    room = handle.max_duration - CONTEXT_ROOM
    if cont.duration > room:
        raise InvalidArgument(
            f"the clip to continue is {cont.duration:.1f} s; model '{handle.name}' sees "
            f"{handle.max_duration:g} s at once and needs room to continue, so at most "
            f"{room:g} s: send the last bars only")


def _conditioning_text(prompt: str, bpm) -> str:
    """The prompt, with the tempo said in words the model was trained on."""
    if bpm is None:
        return prompt
    tempo_text = f"{bpm:g} bpm"
    return f"{prompt}, {tempo_text}" if prompt else tempo_text


def _import_musicgen():
    try:
        from .audiocraft_compat import import_musicgen

        return import_musicgen()
    except ImportError as exc:
        raise Unavailable(f"{_NO_AUDIOCRAFT} ({exc})") from None

