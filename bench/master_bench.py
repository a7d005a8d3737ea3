"""Benchmark the master engine against ffmpeg's two-pass loudnorm.

Renders a Bach chorale with fluidsynth, loops it to 3 minutes (stereo,
44.1 kHz), masters it to -14 LUFS / -1 dBTP with both, and prints the
realtime factor, the |LUFS error| and the true-peak overshoot as measured
by libebur128, then the time our engine spends per stage.

Usage: .venv/bin/python bench/master_bench.py [--seconds 180] [--rate 44100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.music: the shared renders

from bridge.core.engine import Audio, RunContext
from bridge.dsp import loudness
from bridge.engines.master import MasterEngine
from tests.music import load, render_bach

TARGET, CEILING = -14.0, -1.0


def run_engine(x: np.ndarray, rate: int, eq: bool) -> tuple[np.ndarray, float, dict]:
    engine = MasterEngine()
    marks = []
    ctx = RunContext(progress=lambda f, stage: marks.append((time.perf_counter(), stage)))
    start = time.perf_counter()
    result = engine.run(None, {"audio": Audio(x, rate)}, engine.validate({"eq": eq}), ctx)
    total = time.perf_counter() - start
    stages: dict = {}
    edges = marks + [(start + total, "end")]
    for (t0, stage), (t1, _) in zip(edges, edges[1:]):
        stages[stage] = stages.get(stage, 0.0) + (t1 - t0)
    return result.outputs[0].audio.samples, total, stages | {"_report": result.report}


def run_loudnorm(path: Path, out: Path) -> float:
    """ffmpeg loudnorm, two passes (measure, then linear normalisation)."""
    start = time.perf_counter()
    first = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
         f"loudnorm=I={TARGET}:TP={CEILING}:print_format=json", "-f", "null", "-"],
        capture_output=True, text=True, check=True)
    stats = json.loads(first.stderr[first.stderr.rindex("{"):])
    second = (
        f"loudnorm=I={TARGET}:TP={CEILING}:measured_I={stats['input_i']}:"
        f"measured_TP={stats['input_tp']}:measured_LRA={stats['input_lra']}:"
        f"measured_thresh={stats['input_thresh']}:offset={stats['target_offset']}:linear=true"
    )
    # loudnorm resamples to 192 kHz internally; bring it back to the source rate.
    rate = sf.info(str(path)).samplerate
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-y", "-i", str(path), "-af", second,
         "-ar", str(rate), "-c:a", "pcm_f32le", str(out)],
        capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def row(name: str, seconds: float, wall: float, y: np.ndarray, rate: int) -> str:
    m = loudness.measure(y, rate)
    err = abs(m.integrated_lufs - TARGET)
    over = m.true_peak_dbtp - CEILING
    return (f"{name:<26} {seconds / wall:8.1f}x {wall:8.2f} s {m.integrated_lufs:9.3f} "
            f"{err:9.3f} {m.true_peak_dbtp:9.3f} {over:+9.3f}  {y.shape[0] == frames_in}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per engine; the fastest counts (the machine may be shared)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = render_bach(tmp, args.rate, seconds=args.seconds)
        x, rate = load(path, channels=2)
        global frames_in
        frames_in = x.shape[0]
        print(f"input: {path.name}, {x.shape[1]} ch, {rate} Hz, {x.shape[0] / rate:.1f} s, "
              f"{loudness.measure(x, rate).integrated_lufs:.2f} LUFS; target {TARGET} LUFS / "
              f"{CEILING} dBTP; judged by libebur128 {loudness.ebur.get_libebur128_version()}")
        print(f"{'engine':<26} {'realtime':>9} {'wall':>10} {'LUFS':>9} {'|err| LU':>9} "
              f"{'TP dBTP':>9} {'TP over':>9}  exact length")
        runs = {}
        for eq in (True, False):
            y, wall, stages = min((run_engine(x, rate, eq) for _ in range(args.repeat)),
                                  key=lambda run: run[1])
            runs[eq] = stages
            print(row(f"studio-bridge master{'' if eq else ' eq=off'}", x.shape[0] / rate, wall, y, rate))
        out = Path(tmp) / "loudnorm.wav"
        wall = min(run_loudnorm(path, out) for _ in range(args.repeat))
        y, _ = sf.read(out, always_2d=True)
        print(row("ffmpeg loudnorm 2-pass", x.shape[0] / rate, wall, y, rate))
        print("\nstudio-bridge master, seconds per stage:")
        for eq, stages in runs.items():
            report = stages.pop("_report")
            parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
            print(f"  eq={str(eq).lower():<5} {parts}  (limiter passes {report['limiter']['passes']}, "
                  f"max reduction {report['limiter']['max_reduction_db']} dB)")
    sys.stdout.flush()


frames_in = 0

if __name__ == "__main__":
    main()
