"""pyo starts a result on the exact sample inside a block (manual server, no JACK)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from hosts.live.host import Voice, _import_pyo, _view
    pyo = _import_pyo()
    block, rate = 256, 48000
    s = pyo.Server(sr=rate, nchnls=1, buffersize=block, duplex=0, audio="manual")
    s.deactivateMidi(); s.setVerbosity(1); s.boot(); s.start()
    out = _view(s.getOutputAddr(), block, 1)
    table = pyo.DataTable(size=8, init=[0.0, 0.5, 0.25, 0.125, 0.0625, 0.03, 0.01, 0.0])
    results = {}
    for offset in [0, 1, 37, 128, 254, 255]:
        voice = Voice(pyo, table, 8, offset, rate, block, loop=False)
        s.process()
        first = out[:, 0].copy()
        s.process()
        second = out[:, 0].copy()
        signal = np.concatenate([first, second])
        results[offset] = int(np.flatnonzero(signal)[0]) - 1  # table[0] is 0: its start is one before
        voice.stop(); del voice
        for _ in range(2):
            s.process()
    looped = Voice(pyo, table, 8, 3, rate, block, loop=True)
    s.process()
    results["loop"] = out[3:3 + 24, 0].round(4).tolist()
    s.stop(); s.shutdown()
    print(json.dumps(results))
""")


def test_table_starts_at_the_offset_inside_the_block():
    pytest.importorskip("pyo")
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    results = json.loads(done.stdout.strip().splitlines()[-1])
    loop = results.pop("loop")
    assert {int(k): v for k, v in results.items()} == {0: 0, 1: 1, 37: 37, 128: 128, 254: 254, 255: 255}
    table = [0.0, 0.5, 0.25, 0.125, 0.0625, 0.03, 0.01, 0.0]
    assert np.allclose(loop, table * 3, atol=1e-6)  # --loop: the table again from its first sample, no gap, no overlap
