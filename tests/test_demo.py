"""`studio-bridge demo`: renders with pyo, serves, masters, reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.loudness import measure


def test_demo_masters_its_own_music(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bridge", "demo", "--out", str(tmp_path / "demo"),
                             "--seconds", "8", "--json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)  # pyo's console chatter must not reach stdout
    assert job["state"] == "succeeded"
    song = Path(job["input"])
    mastered = Path(job["outputs"][0]["path"])
    assert song.parent == mastered.parent == tmp_path / "demo"
    source, after = measure(song), measure(mastered)
    assert source["channels"] == 2 and abs(source["frames"] - 8 * 48000) <= 256
    assert source["integrated_lufs"] < -16  # the render is quieter than the target...
    assert abs(after["integrated_lufs"] + 14.0) <= 0.1  # ...and comes out at streaming loudness
    assert after["true_peak_dbtp"] <= -1.0
    assert after["frames"] == source["frames"]
    assert job["report"]["after"]["integrated_lufs"] == round(after["integrated_lufs"], 2) or \
        abs(job["report"]["after"]["integrated_lufs"] - after["integrated_lufs"]) < 0.02


def test_demo_prints_where_and_how_loud(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bridge", "demo", "--out", str(tmp_path),
                             "--seconds", "6"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "demo-song.master.mastered.wav") in result.stdout
    assert "after" in result.stdout and "LUFS" in result.stdout and "dBTP" in result.stdout
