"""Reference measurements by libebur128 (pyebur128), independent of our DSP."""

from __future__ import annotations

import numpy as np
import pyebur128
import soundfile


def measure(path) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP, max over channels)."""
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    lufs, peak_db = measure_array(data, rate)
    return {"integrated_lufs": lufs, "true_peak_dbtp": peak_db,
            "frames": data.shape[0], "rate": rate, "channels": data.shape[1]}


def measure_array(x, rate: int) -> tuple[float, float]:
    """(integrated LUFS, max true peak dBTP) of (frames, channels) samples, by libebur128."""
    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_TRUE_PEAK
    state = pyebur128.R128State(x.shape[1], rate, mode)
    state.add_frames(np.ascontiguousarray(x, dtype=np.float64).ravel(), x.shape[0])
    peak = max(pyebur128.get_true_peak(state, c) for c in range(x.shape[1]))
    return pyebur128.get_loudness_global(state), 20 * np.log10(max(peak, 1e-12))
