#!/usr/bin/env python3
"""Segments per forward pass and precision: what they cost or gain on this device.

The engine in-process on a full-size random-weight HTDemucs (the released htdemucs's
shape, built by ``separate_bench.full_htdemucs`` and saved/loaded through demucs's own
serialisation), one 30 s stereo clip, shifts 0; each setting timed ``--repeat`` times (the
fastest counts) and its stems compared with float32 one-at-a-time. Random weights: time
and numerical difference only, never quality.

    .venv/bin/python bench/separate_batch.py [--seconds 30] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from separate_bench import SINGLE, write_full_repo  # noqa: E402
from separate_quality import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
from bridge.core.engine import Audio, RunContext  # noqa: E402
from bridge.core.store import ModelEntry, ModelStore  # noqa: E402
from bridge.engines.demucs import SeparateEngine  # noqa: E402
from tests.music import render_bach  # noqa: E402

SETTINGS = [(1, "float32"), (2, "float32"), (4, "float32"), (1, "half"), (4, "half")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbbatch-") as tmp:
        tmp = Path(tmp)
        write_full_repo(tmp / "repo", "htdemucs")
        store = ModelStore(tmp / "models")
        engine = SeparateEngine()
        engine.store = store
        staged = store.staging()
        info = engine.import_model(tmp / "repo", SINGLE, staged)
        store.add(staged, ModelEntry(SINGLE, "separate", size_bytes=0, source="bench", **info))
        handle = engine.load(SINGLE, "cpu")
        rate = 44100
        mix, _ = soundfile.read(render_bach(tmp, rate, args.seconds), dtype="float32")
        rows, reference = [], None
        for batch, precision in SETTINGS:
            params = engine.validate({"shifts": 0, "segments_per_pass": batch,
                                      "precision": precision})
            best, result = None, None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = engine.run(handle, {"audio": Audio(mix, rate)}, params, RunContext())
                took = time.perf_counter() - t0
                best = took if best is None else min(best, took)
            stems = np.stack([o.audio.samples for o in result.outputs])
            reference = stems if reference is None else reference
            diff = float(np.abs(stems - reference).max())
            rel = float(np.sqrt(np.mean((stems - reference) ** 2) / np.mean(reference ** 2)))
            rows.append((batch, result.report["precision"], best, diff, rel))
            print(f"[separate_batch] {batch} x {precision}: {best:.2f} s", file=sys.stderr)
    print(f"{args.seconds:g} s stereo clip, full-size random HTDemucs (41.5 M parameters), CPU, "
          f"torch threads = usable cores; fastest of {args.repeat}.\n")
    print("| segments per pass | precision | seconds | vs 1 x float32 | max abs diff "
          "| relative RMS diff |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for batch, precision, took, diff, rel in rows:
        print(f"| {batch} | {precision} | {took:.2f} | {rows[0][2] / took:.2f}x | {diff:.1e} "
              f"| {rel:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
