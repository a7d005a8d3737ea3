"""Memory of a real daemon separating long files: does it stay bounded?

Starts ``python -m bridge serve`` with a tiny random-weight HTDemucs (built
through demucs's own serialisation, imported with ``models import``), writes
N minutes of stereo noise as a float WAV, runs one ``separate`` job per
length (shifts 0, all four stems, no cache) and samples the daemon's
``/proc/PID/status`` every 50 ms:

* ``RssAnon`` - private memory (heap, torch tensors): what the job really
  holds; it is what must stay bounded.
* ``VmHWM`` - peak resident set, which also counts pages of files the daemon
  has mapped (long inputs and stems are disk-backed arrays in its scratch
  folder); the kernel drops those pages under pressure, so they are cache.

Random weights: memory and time only. Each length gets a fresh daemon.

Usage: .venv/bin/python bench/separate_memory.py [--minutes 2 10 20] [--rate 44100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from separate_quality import ROOT, Daemon  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.models import write_tiny_demucs_repo  # noqa: E402


def status_mib(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("RssAnon", "VmRSS", "VmHWM")}


class Sampler(threading.Thread):
    """Peak RssAnon of a process, sampled until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_anon, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_anon = max(self.peak_anon, status_mib(self.pid)["RssAnon"])
            time.sleep(0.05)


def write_noise(path: Path, minutes: float, rate: int) -> float:
    """Stereo float WAV written block by block (this process stays small too)."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * rate)
    with soundfile.SoundFile(path, "w", rate, 2, subtype="FLOAT") as handle:
        for start in range(0, frames, rate * 10):
            n = min(rate * 10, frames - start)
            handle.write(0.1 * rng.standard_normal((n, 2), dtype=np.float32))
    return frames * 2 * 4 / 2**20


def one(base: Path, repo: Path, minutes: float, rate: int) -> dict:
    daemon = Daemon(base)
    daemon.import_model(repo, "tiny")
    daemon.start()
    try:
        clip = daemon.media / f"long-{minutes:g}.wav"
        mix_mib = write_noise(clip, minutes, rate)
        daemon.client.load_model("tiny")
        idle = status_mib(daemon.proc.pid)
        sampler = Sampler(daemon.proc.pid)
        sampler.start()
        job, wall = daemon.separate(clip, "tiny", {"shifts": 0}, daemon.media / "out")
        sampler.done.set()
        sampler.join()
        after = status_mib(daemon.proc.pid)
        for output in job["outputs"]:  # each run writes 4 x the input: do not fill the disk
            Path(output["path"]).unlink()
        clip.unlink()
        return {"minutes": minutes, "wall": wall, "windows": job["report"].get("windows"),
                "mix": mix_mib, "idle_anon": idle["RssAnon"], "peak_anon": sampler.peak_anon,
                "hwm": after["VmHWM"], "stems": mix_mib * len(job["outputs"])}
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0, 20.0])
    parser.add_argument("--rate", type=int, default=44100,
                        help="input rate (48000 exercises resampling to the model's 44.1 kHz)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sbmem-") as tmp:
        repo = write_tiny_demucs_repo(Path(tmp) / "repo", name="tiny")
        for minutes in args.minutes:
            print(f"[separate_memory] {minutes:g} min at {args.rate} Hz", file=sys.stderr)
            rows.append(one(Path(tmp) / f"d{len(rows)}", repo, minutes, args.rate))
    print(f"Input: stereo float WAV at {args.rate} Hz; tiny random HTDemucs (44.1 kHz); "
          "shifts 0; 4 stems written as float WAV.\n")
    print("| minutes | job wall (s) | windows | input (MiB) | stems written (MiB) "
          "| RssAnon idle, model loaded (MiB) | peak RssAnon during job (MiB) "
          "| peak - idle (MiB) | VmHWM incl. mapped files (MiB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['minutes']:g} | {r['wall']:.1f} | {r['windows']} | {r['mix']:.0f} | "
              f"{r['stems']:.0f} | {r['idle_anon']:.0f} | {r['peak_anon']:.0f} | "
              f"{r['peak_anon'] - r['idle_anon']:.0f} | {r['hwm']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
