#!/usr/bin/env python3
"""Separation speed: the daemon's `separate` engine against demucs's own API and CLI.

Model: a FULL-size HTDemucs with RANDOM weights (timing only; its stems are noise),
built here with demucs's own classes and serialisation (tests/models.py's
``demucs_package`` / ``save_demucs_package``) and loaded by every contender through
``demucs.pretrained.get_model(name, repo=folder)``. Its configuration is the released
htdemucs's: ``HTDemucs(sources=[drums, bass, other, vocals], bottom_channels=512,
segment=7.8)`` (t_layers=5, channels=48, depth=4, nfft=4096 are HTDemucs's defaults),
41.5 M parameters, 166 MB as float32; ``--arch default`` takes HTDemucs's bare defaults
instead (bottom_channels=0, segment=10: 26.9 M parameters). All runs use shifts=0 (the
daemon's and demucs's default is 1, which adds a pass over a 0.5 s-longer input).

Prints Markdown on stdout (progress on stderr):

  (a) per clip (8 s and 30 s of a Bach render, stereo 44.1 kHz float WAV): a warm daemon
      job (``Client.run`` submit -> done, no result cache; the model already resident)
      vs demucs's API in this process with the model already loaded (normalise +
      ``apply_model``, as ``demucs.api.Separator.separate_tensor``; no file I/O) vs
      ``python -m demucs -n NAME --repo FOLDER -o OUT --shifts 0 --float32 clip.wav``
      (a new process per clip: interpreter, torch import, model load, separation, write);
  (b) the daemon's cold first job (daemon just SERVING, model not loaded, torch not
      imported) vs the warm second job, on the 8 s clip;
  (c) a bag of 4 full-size members with a diagonal weights matrix (like htdemucs_ft: each
      member counts for one stem): all stems vs ``stems=vocals`` (should run 1 member of
      4) vs ``two_stems=vocals`` (needs every member).

    .venv/bin/python bench/separate_bench.py            # repeat 2 (fastest counts); bag on 30 s; ~6 min
    .venv/bin/python bench/separate_bench.py --quick    # repeat 1; bag on 8 s; ~3 min
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # separate_quality: Daemon, API helpers
from separate_quality import ROOT, Daemon, api_separate, load_api_model  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.models import demucs_package, save_demucs_package  # noqa: E402
from tests.music import render_bach  # noqa: E402

PY = sys.executable
FOUR = ("drums", "bass", "other", "vocals")
SINGLE, BAG = "htfull", "htbag"


def log(msg: str) -> None:
    print(f"[separate_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def full_htdemucs(seed: int, arch: str):
    """A full-size, randomly initialised HTDemucs (the released htdemucs's shape)."""
    import torch
    from demucs.htdemucs import HTDemucs

    kwargs = dict(sources=list(FOUR), audio_channels=2, samplerate=44100)
    if arch == "htdemucs":
        kwargs |= dict(bottom_channels=512, segment=7.8)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return HTDemucs(**kwargs).eval()
    finally:
        torch.random.set_rng_state(state)


def write_full_repo(folder: Path, arch: str) -> tuple[int, int]:
    """A demucs repo folder: ``htfull.yaml`` (member 0) and ``htbag.yaml`` (4 members,
    diagonal weights). Returns (parameters per member, bytes per member file)."""
    folder.mkdir(parents=True, exist_ok=True)
    sigs, params, size = [], 0, 0
    for index in range(4):
        model = full_htdemucs(index, arch)
        params = sum(p.numel() for p in model.parameters())
        sig = hashlib.sha256(f"bench-{arch}:{index}".encode()).hexdigest()[:8]
        size = save_demucs_package(demucs_package(model), folder, sig).stat().st_size
        sigs.append(sig)
        del model
    (folder / f"{SINGLE}.yaml").write_text(f"models: ['{sigs[0]}']\n")
    diagonal = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    (folder / f"{BAG}.yaml").write_text(
        f"models: [{', '.join(repr(s) for s in sigs)}]\nweights: {diagonal}\n")
    return params, size


def cli_demucs(name: str, repo: Path, clip: Path, out: Path) -> tuple[float | None, str]:
    """``python -m demucs`` once; (wall seconds, '') or (None, why it failed)."""
    t0 = time.perf_counter()
    done = subprocess.run([PY, "-m", "demucs", "-n", name, "--repo", str(repo), "-o", str(out),
                           "--shifts", "0", "--float32", str(clip)],
                          cwd=ROOT, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    stems = list((out / name / clip.stem).glob("*.wav"))
    if done.returncode or len(stems) != 4:
        return None, (f"exit {done.returncode}, {len(stems)} stems written: "
                      f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return wall, ""


def fmt(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.2f}{unit}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="repeat 1, bag part on the 8 s clip")
    parser.add_argument("--repeat", type=int, default=None, help="runs per cell; the fastest counts")
    parser.add_argument("--clips", default="8,30", help="clip lengths in seconds")
    parser.add_argument("--arch", choices=("htdemucs", "default"), default="htdemucs",
                        help="htdemucs: the released model's shape (bottom_channels=512, "
                             "segment 7.8 s); default: HTDemucs() defaults")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 2)
    lengths = [float(x) for x in args.clips.split(",")]
    bag_len = lengths[0] if args.quick else lengths[-1]
    load0 = os.getloadavg()

    base = Path(tempfile.mkdtemp(prefix="sbs-", dir="/tmp"))
    daemon = Daemon(base / "d")
    try:
        log(f"building 4 full-size random HTDemucs ({args.arch}) with demucs's serialisation")
        t0 = time.perf_counter()
        repo = base / "repo"
        params, size = write_full_repo(repo, args.arch)
        build = time.perf_counter() - t0
        log(f"{params / 1e6:.1f} M parameters, {size / 1e6:.0f} MB per member; built in {build:.0f} s; importing")
        imports = {name: daemon.import_model(repo, name) for name in (SINGLE, BAG)}

        clips = {}
        (base / "music").mkdir()
        for seconds in sorted(set(lengths + [bag_len])):
            src = render_bach(base / "music", 44100, seconds=seconds)
            clip = daemon.media / f"bach{seconds:g}s.wav"
            shutil.copyfile(src, clip)
            clips[seconds] = (clip, sf.read(clip, dtype="float32", always_2d=True)[0])

        # (b) cold vs warm, right after start
        log("starting the daemon; cold job, then warm")
        serving = daemon.start()
        small = clips[lengths[0]][0]
        cold_job, cold = daemon.separate(small, SINGLE, {"shifts": 0}, daemon.media / "out" / "cold")
        warm_job, warm = daemon.separate(small, SINGLE, {"shifts": 0}, daemon.media / "out" / "warm")
        rss_single = daemon.rss_mib()

        # (a) warm daemon vs in-process API vs the demucs CLI
        import torch

        t0 = time.perf_counter()
        api_model = load_api_model(SINGLE, repo)
        api_load = time.perf_counter() - t0
        rows, cli_problem = [], ""
        for seconds in lengths:
            clip, mix = clips[seconds]
            d_walls, d_engine, a_walls, c_walls = [], [], [], []
            for r in range(repeat):
                log(f"(a) {seconds:g} s clip, run {r + 1}/{repeat}: daemon, API, CLI")
                job, wall = daemon.separate(clip, SINGLE, {"shifts": 0}, daemon.media / "out" / f"a{seconds:g}-{r}")
                d_walls.append(wall)
                d_engine.append(float(job["report"]["seconds"]))
                t0 = time.perf_counter()
                api_separate(api_model, mix, shifts=0)
                a_walls.append(time.perf_counter() - t0)
                wall, why = cli_demucs(SINGLE, repo, clip, base / "cli" / f"{seconds:g}-{r}")
                if wall is None:
                    cli_problem = why
                else:
                    c_walls.append(wall)
            rows.append((seconds, min(d_walls), min(d_engine), min(a_walls),
                         min(c_walls) if c_walls else None))
        del api_model

        # (c) the bag: stem subsets
        bag_clip = clips[bag_len][0]
        log("(c) bag of 4: load, then all stems / stems=vocals / two_stems=vocals")
        t0 = time.perf_counter()
        daemon.client.load_model(BAG)
        bag_load = time.perf_counter() - t0
        bag_rows = []
        for label, extra in (("all 4 stems", {}), ("`stems=vocals`", {"stems": "vocals"}),
                             ("`two_stems=vocals`", {"two_stems": "vocals"})):
            walls, reports = [], []
            for r in range(repeat):
                job, wall = daemon.separate(bag_clip, BAG, {"shifts": 0} | extra,
                                            daemon.media / "out" / f"bag-{len(bag_rows)}-{r}")
                walls.append(wall)
                reports.append(job["report"])
            rep = reports[int(np.argmin(walls))]
            bag_rows.append((label, min(walls), float(rep["seconds"]), int(rep["bag_members_run"]),
                             int(rep["bag_members"]), [o for o in rep["stems"]]))
        rss_bag = daemon.rss_mib()
    finally:
        daemon.stop()
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    load1 = os.getloadavg()
    print("## Separation speed\n")
    print(f"Machine: {platform.node()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
          f"torch {torch.__version__} CPU ({torch.get_num_threads()} threads in the bench process); "
          f"load average before {load0[0]:.2f} / after {load1[0]:.2f}. "
          f"Command: `bench/separate_bench.py{' --quick' if args.quick else ''}"
          f"{'' if args.arch == 'htdemucs' else ' --arch default'}` (repeat {repeat}, fastest counts).\n")
    print(f"Model: full-size HTDemucs ({args.arch} shape), **random weights: timing only**, "
          f"{params / 1e6:.1f} M parameters, {size / 1e6:.0f} MB per member file; 4 members "
          f"built and saved in {build:.0f} s. `models import`: {imports[SINGLE]:.1f} s (single), "
          f"{imports[BAG]:.1f} s (bag of 4). shifts=0 everywhere; segment/overlap: the model's "
          f"({7.8 if args.arch == 'htdemucs' else 10:g} s) / 0.25.\n")
    print("(a) One clip, seconds (realtime factor = clip length / time):\n")
    print("| clip | daemon warm job (wall) | of which engine | demucs API in-process, model loaded | "
          "`python -m demucs` (new process) | daemon / API | CLI / daemon |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for seconds, d, e, a, c in rows:
        print(f"| {seconds:g} s | {d:.2f} ({seconds / d:.2f}x) | {e:.2f} | {a:.2f} ({seconds / a:.2f}x) | "
              f"{fmt(c)}{'' if c is None else f' ({seconds / c:.2f}x)'} | {d / a:.2f} | "
              f"{'n/a' if c is None else f'{c / d:.2f}'} |")
    if cli_problem:
        print(f"\n`python -m demucs` failed: {cli_problem}")
    print(f"\nIn-process `get_model` for the API column: {api_load:.2f} s (torch already imported).\n")
    print(f"(b) Cold vs warm, {lengths[0]:g} s clip (daemon spawn -> SERVING {serving:.2f} s; the cold "
          f"job was submitted right after):\n")
    print("| job | wall (s) | engine report (s) | wall - engine (s) |\n| --- | ---: | ---: | ---: |")
    for label, job, wall in (("cold: first job after start", cold_job, cold),
                             ("warm: second job", warm_job, warm)):
        eng = float(job["report"]["seconds"])
        print(f"| {label} | {wall:.2f} | {eng:.2f} | {wall - eng:.2f} |")
    print(f"\nDaemon RSS with the single model resident: {rss_single:.0f} MiB.\n")
    print(f"(c) Bag of 4 full-size members, diagonal weights (like htdemucs_ft), {bag_len:g} s clip; "
          f"`load_model` of the bag {bag_load:.2f} s; daemon RSS afterwards {rss_bag:.0f} MiB:\n")
    print("| request | wall (s) | engine (s) | members run | stems written | speed-up vs all |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for label, wall, eng, run, total, stems in bag_rows:
        print(f"| {label} | {wall:.2f} | {eng:.2f} | {run} of {total} | {', '.join(stems)} | "
              f"{bag_rows[0][1] / wall:.2f}x |")
    print()


if __name__ == "__main__":
    main()
