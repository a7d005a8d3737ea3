#!/usr/bin/env python3
"""Generation speed: the daemon's `generate` engine against audiocraft's own API.

Model: MusicGen with musicgen-small's shapes (24 layers, 1024 wide, 16 heads, 4 x 2048
codebooks, cross-attention to the text condition; EnCodec 32 kHz at its released size) and
RANDOM weights - compute equals the real model's, the output is noise. Built with
audiocraft's own builders, saved in its released checkpoint format (tests/models.py
``write_tiny_musicgen(size=SMALL)``), imported with ``studio-bridge models import`` and loaded
by both contenders through ``MusicGen.get_pretrained(folder)``. The text conditioner is a
look-up table (the real T5 cannot be downloaded here; it costs milliseconds per prompt).

Prints Markdown on stdout (progress on stderr):

  (a) one generation of D seconds, same prompt and seed: a warm daemon job (no cache, no
      tempo lock, output at the model's 32 kHz) vs ``MusicGen.generate`` in this process
      with the model loaded; the two outputs are compared sample by sample;
  (b) 4 variations in one batch (one job) vs 1;
  (c) the daemon's cold first job (model not loaded, audiocraft not imported) vs warm.

    .venv/bin/python bench/generate_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from separate_quality import ROOT, Daemon  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.models import SMALL, write_tiny_musicgen  # noqa: E402

PROMPT, SEED, NAME = "warm rhodes chords", 1234, "small-random"


def log(msg: str) -> None:
    print(f"[generate_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def job(daemon: Daemon, out: Path, seconds: float, **params) -> tuple[dict, float]:
    t0 = time.perf_counter()
    done = daemon.client.run("generate", {}, {"prompt": PROMPT, "seed": SEED, "duration": seconds,
                                              "sample_rate": 32000, "format": "float", **params},
                             str(out), model=NAME, no_cache=True)
    wall = time.perf_counter() - t0
    if done["state"].upper() != "SUCCEEDED":
        raise RuntimeError(f"job {done['state']}: {done['error']}")
    return done, wall


def in_process(folder: Path, seconds: float) -> tuple[np.ndarray, float, float]:
    """(audio, load seconds, generate seconds) through audiocraft's API directly."""
    import torch

    from bridge.engines.audiocraft_compat import import_musicgen

    musicgen = import_musicgen()
    t0 = time.perf_counter()
    model = musicgen.MusicGen.get_pretrained(str(folder), device="cpu")
    load = time.perf_counter() - t0
    model.set_generation_params(duration=seconds)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    wav = model.generate([f"{PROMPT}"])
    took = time.perf_counter() - t0
    return wav[0].numpy().T, load, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds generated per job")
    args = parser.parse_args()
    d = args.seconds
    with tempfile.TemporaryDirectory(prefix="sbgen-") as tmp:
        tmp = Path(tmp)
        log("building a random MusicGen with musicgen-small's shapes")
        t0 = time.perf_counter()
        folder = write_tiny_musicgen(tmp / "model", size=SMALL)
        built = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.iterdir())
        daemon = Daemon(tmp / "d")
        imported = daemon.import_model(folder, NAME)
        log("starting the daemon; cold job, then warm")
        daemon.start()
        try:
            cold, cold_wall = job(daemon, daemon.media / "cold", d)
            warm, warm_wall = job(daemon, daemon.media / "warm", d)
            rss = daemon.rss_mib()
            log("4 variations in one job")
            four, four_wall = job(daemon, daemon.media / "four", d, variations=4)
        finally:
            daemon.stop()
        log("audiocraft in this process")
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        api_audio, api_load, api_took = in_process(folder, d)
        ours = soundfile.read(warm["outputs"][0]["path"], dtype="float32", always_2d=True)[0]
        diff = float(np.abs(ours - api_audio).max()) if ours.shape == api_audio.shape else None
    print("## Generation speed\n")
    print(f"Machine: {platform.node()}, {len(os.sched_getaffinity(0))} cores, torch "
          f"{torch.__version__}; `bench/generate_bench.py --seconds {d:g}`.\n")
    print(f"Model: musicgen-small shapes, **random weights: timing only**; checkpoint files "
          f"{size / 2**20:.0f} MiB, built in {built:.0f} s, `models import` {imported:.1f} s. "
          f"Prompt '{PROMPT}', seed {SEED}, {d:g} s generated per job, no tempo lock.\n")
    print("(a) One generation (seconds; per generated second in brackets):\n")
    print("| contender | wall (s) | engine (s) |")
    print("| --- | ---: | ---: |")
    print(f"| daemon, warm job | {warm_wall:.2f} ({warm_wall / d:.1f}) | "
          f"{warm['report']['seconds']:.2f} |")
    print(f"| audiocraft `generate` in-process, model loaded | {api_took:.2f} ({api_took / d:.1f}) "
          f"| - |")
    print(f"\nSame seed, same parameters: max |daemon - audiocraft| = "
          f"{'shape differs' if diff is None else f'{diff:.2e}'} over {len(ours)} samples. "
          f"In-process `get_pretrained`: {api_load:.2f} s. Daemon RSS with the model resident: "
          f"{rss:.0f} MiB.\n")
    print("(b) Variations, one job each:\n")
    print("| request | wall (s) | per variation (s) | vs 1 |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| 1 variation | {warm_wall:.2f} | {warm_wall:.2f} | 1.00x |")
    print(f"| 4 variations, one batch | {four_wall:.2f} | {four_wall / 4:.2f} | "
          f"{4 * warm_wall / four_wall:.2f}x |")
    print("\n(c) Cold vs warm:\n")
    print("| job | wall (s) | engine (s) | wall - engine (s) |")
    print("| --- | ---: | ---: | ---: |")
    for label, (done, wall) in (("cold: first job after start", (cold, cold_wall)),
                                ("warm: second job", (warm, warm_wall))):
        engine = done["report"]["seconds"]
        print(f"| {label} | {wall:.2f} | {engine:.2f} | {wall - engine:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
