"""Peak memory of the separate engine on long files: does it stay bounded?

Runs the engine in-process (the daemon runs it the same way) on N minutes of
stereo 44.1 kHz audio with a tiny random-weight HTDemucs built through
demucs's own serialisation, each length in a fresh process, and prints peak
RSS against the size of the arrays the job must hold (mix + stems). Random
weights: timing and memory only.

Usage: .venv/bin/python bench/separate_memory.py [--minutes 2 10 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(minutes: float) -> dict:
    """Separate ``minutes`` of audio in this process; report time and peak RSS."""
    import numpy as np

    from bridge.core.engine import Audio, RunContext
    from bridge.core.store import ModelEntry, ModelStore
    from bridge.engines.demucs import SeparateEngine
    from tests.models import write_tiny_demucs_repo

    work = Path(tempfile.mkdtemp(prefix="sbmem-"))
    store = ModelStore(work / "models")
    staged = store.staging()
    write_tiny_demucs_repo(staged, name="tiny")
    store.add(staged, ModelEntry("tiny", "separate", "bench", 0))
    engine = SeparateEngine()
    engine.store = store
    handle = engine.load("tiny", "cpu")
    rate = 44100
    frames = int(minutes * 60 * rate)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((frames, 2), dtype=np.float32)
    mix *= 0.1  # float32 throughout: no float64 temporary inflating the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    result = engine.run(handle, {"audio": Audio(mix, rate)}, engine.validate({"shifts": 0}), RunContext())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stems = mix.nbytes * len(result.outputs)
    return {"minutes": minutes, "seconds": round(seconds, 1), "peak_rss_mib": round(peak / 2**20),
            "before_run_mib": round(base / 2**20), "mix_mib": round(mix.nbytes / 2**20),
            "stems_mib": round(stems / 2**20),
            "windows": result.report.get("windows")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0, 20.0])
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one)))
        return 0
    rows = []
    for minutes in args.minutes:  # a fresh process each, so peaks do not mix
        out = subprocess.run([sys.executable, __file__, "--one", str(minutes)], capture_output=True,
                             text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| minutes | seconds | windows | mix (MiB) | RSS with model + mix (MiB) | peak RSS (MiB) "
          "| stems out (MiB) | peak - before - stems: working memory (MiB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        extra = r["peak_rss_mib"] - r["before_run_mib"] - r["stems_mib"]
        print(f"| {r['minutes']:g} | {r['seconds']} | {r['windows']} | {r['mix_mib']} | "
              f"{r['before_run_mib']} | {r['peak_rss_mib']} | {r['stems_mib']} | {extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
