"""Tiny random-weight models built through each library's own serialisation.

They load through the same code path real weights take (for demucs:
``demucs.pretrained.get_model(name, repo=folder)``), so tests exercise the
real loader, checksum checks and bag handling without downloading anything.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path


def tiny_htdemucs(sources=("drums", "bass", "other", "vocals"), samplerate=44100,
                  audio_channels=2, seed=0, segment=None):
    """A randomly initialised, very small ``HTDemucs`` (a few hundred kB).

    Args:
        sources: the stem names the model separates.
        samplerate: the model's sample rate.
        audio_channels: channels the model takes and returns.
        seed: torch seed for the random weights (same seed, same model).
        segment: training segment in seconds (HTDemucs's default, 10, if None).
    """
    import torch
    from demucs.htdemucs import HTDemucs

    kwargs = dict(sources=list(sources), audio_channels=audio_channels, samplerate=samplerate,
                  channels=4, bottom_channels=0, t_layers=1, t_heads=1, nfft=4096, dconv_comp=2)
    if segment is not None:
        kwargs["segment"] = segment
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = HTDemucs(**kwargs)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


def demucs_package(model) -> dict:
    """The dict ``demucs.states.serialize_model`` builds, without omegaconf.

    ``training_args`` is what ``OmegaConf.to_container`` returns (a plain
    dict); ``load_model`` never reads it.
    """
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs,
            "state": get_state(model, None, half=False), "training_args": {}}


def save_demucs_package(package: dict, folder: Path, sig: str) -> Path:
    """Write ``<sig>-<8 hex of sha256>.th`` as ``demucs.states.save_with_checksum`` does."""
    import torch

    buf = io.BytesIO()
    torch.save(package, buf)
    data = buf.getvalue()
    path = Path(folder) / f"{sig}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def write_tiny_demucs_repo(folder, name="tiny", sources=("drums", "bass", "other", "vocals"),
                           samplerate=44100, audio_channels=2, bag=1, weights=None,
                           segment=None) -> Path:
    """A demucs repo folder holding a tiny random HTDemucs (or a bag of them).

    Writes one ``<sig>-<hash>.th`` per member and ``<name>.yaml`` listing
    them (plus ``weights:`` when given), the layout demucs's ``LocalRepo`` /
    ``BagOnlyRepo`` read.

    Args:
        folder: where to write (created if missing).
        name: the model's name (the yaml file's stem).
        bag: how many members (each with different random weights).
        weights: per-member, per-source weights (``bag`` rows of
            ``len(sources)``); demucs's default (all ones) if None.

    Returns:
        ``folder`` as a Path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sigs = []
    for index in range(bag):
        model = tiny_htdemucs(sources, samplerate, audio_channels, seed=index, segment=segment)
        sig = hashlib.sha256(f"{name}:{index}".encode()).hexdigest()[:8]
        save_demucs_package(demucs_package(model), folder, sig)
        sigs.append(sig)
    lines = [f"models: [{', '.join(repr(s) for s in sigs)}]"]
    if weights is not None:
        lines.append("weights: [" + ", ".join(
            "[" + ", ".join(f"{float(w)!r}" for w in row) + "]" for row in weights) + "]")
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder
