"""Importing audiocraft 1.3.0 beside a CPU torch that no torchaudio build matches.

audiocraft imports ``torchaudio`` at module level in six files, but MusicGen's
inference uses one thing from it: ``transforms.Spectrogram`` in the chroma
extractor of melody models (``audiocraft/modules/chroma.py``). Every
torchaudio wheel on PyPI for Linux is a CUDA build: 2.8-2.10 pin their own
torch, and 2.11's compiled extension needs ``libtorch_cuda`` and fails to load
beside CPU torch. So when a real ``import torchaudio`` fails, this module puts
a small stand-in under that name for exactly as long as audiocraft is being
imported, then removes it again: nothing is installed, pip and transformers
still see torchaudio as absent, and a real torchaudio always wins.

The stand-in's ``Spectrogram`` is this project's own, covering what the chroma
extractor asks for (Hann window, centred frames, power, window
normalisation); every other torchaudio name audiocraft imports exists only so
its modules import, and raises if a training loss or metric ever calls it.
"""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import types

MARK = "__studio_bridge_stand_in__"


def import_musicgen():
    """``audiocraft.models`` (imported once), with a torchaudio stand-in if needed.

    Raises:
        ImportError: audiocraft or one of its real needs is missing (the
            message names it); never hidden behind the stand-in.
    """
    logging.getLogger("xformers").setLevel(logging.ERROR)  # its C++ part is not used
    try:
        import torchaudio  # noqa: F401  (a build that loads is always preferred)
    except (ImportError, OSError):
        _drop("torchaudio")
    else:
        import audiocraft.models

        return audiocraft.models
    # transformers decides once, at import, whether torchaudio exists: let it see the truth.
    import transformers  # noqa: F401

    stand_in = _stand_in()
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = stand_in, stand_in.transforms
    try:
        import audiocraft.models
    finally:
        _drop("torchaudio")
    return audiocraft.models


def uses_stand_in() -> bool:
    """True when audiocraft was given the stand-in rather than a real torchaudio."""
    chroma = sys.modules.get("audiocraft.modules.chroma")
    return bool(chroma is not None and getattr(getattr(chroma, "torchaudio", None), MARK, False))


def _drop(name: str) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=__file__)
    setattr(module, MARK, True)
    return module


def _stand_in() -> types.ModuleType:
    import torch

    class Spectrogram(torch.nn.Module):
        """|STFT|^power of the last axis, as the chroma extractor configures it."""

        def __init__(self, n_fft: int = 400, win_length: int | None = None,
                     hop_length: int | None = None, pad: int = 0, power: float | None = 2.0,
                     normalized: bool = False, center: bool = True, **unsupported):
            super().__init__()
            if pad or unsupported:
                raise NotImplementedError(
                    f"the torchaudio stand-in's Spectrogram takes no pad or "
                    f"{sorted(unsupported)}; install a torchaudio that loads with this torch")
            self.n_fft, self.power, self.normalized, self.center = n_fft, power, normalized, center
            self.win_length = win_length or n_fft
            self.hop_length = hop_length or self.win_length // 2
            # A buffer named "window": melody checkpoints store it under that key.
            self.register_buffer("window", torch.hann_window(self.win_length))

        def forward(self, wav: torch.Tensor) -> torch.Tensor:
            shape = wav.shape
            spec = torch.stft(wav.reshape(-1, shape[-1]), self.n_fft, self.hop_length,
                              self.win_length, self.window, center=self.center,
                              pad_mode="reflect", return_complex=True)
            if self.normalized:  # scale by the window's energy, so levels do not depend on it
                spec = spec / self.window.pow(2).sum().sqrt()
            spec = spec.reshape(*shape[:-1], *spec.shape[-2:])
            return spec if self.power is None else spec.abs().pow(self.power)

    def missing(name: str):
        def fail(*args, **kwargs):
            raise NotImplementedError(
                f"torchaudio.{name} is not available: no torchaudio build loads beside this "
                f"torch, and MusicGen inference does not use it")
        return fail

    root, transforms = _module("torchaudio"), _module("torchaudio.transforms")
    transforms.Spectrogram = Spectrogram
    for name in ("MelSpectrogram", "Loudness", "Resample"):
        setattr(transforms, name, missing(f"transforms.{name}"))
    root.transforms, root.save, root.load = transforms, missing("save"), missing("load")
    root.__version__ = "0+studio-bridge-stand-in"
    return root
