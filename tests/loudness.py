"""Reference measurements by libebur128 (pyebur128), independent of our DSP."""

from __future__ import annotations

import numpy as np
import pyebur128
import soundfile


def measure(path) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP, max over channels)."""
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_TRUE_PEAK
    state = pyebur128.R128State(data.shape[1], rate, mode)
    state.add_frames(np.ascontiguousarray(data).ravel(), data.shape[0])
    peak = max(pyebur128.get_true_peak(state, c) for c in range(data.shape[1]))
    return {"integrated_lufs": pyebur128.get_loudness_global(state),
            "true_peak_dbtp": 20 * np.log10(max(peak, 1e-12)),
            "frames": data.shape[0], "rate": rate, "channels": data.shape[1]}
