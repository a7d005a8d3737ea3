"""The ``master`` engine: EQ and glue, loudness to a target, true-peak ceiling.

Stages: analysing -> eq -> matching reference (optional) -> loudness ->
limiting (1-6 passes) -> verifying (re-level with a lower limit if
libebur128 still reads a peak over the ceiling). Loudness and peaks are judged by
libebur128 (``bridge.dsp.loudness``); the ceiling is held by the
oversampled look-ahead limiter in ``bridge.dsp.limiter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..core.engine import Audio, Engine, EngineKind, InputSpec, Output, Param, RunContext, RunResult
from ..core.errors import InvalidArgument
from ..dsp import limiter, loudness, match

# name -> (integrated loudness target in LUFS, true-peak ceiling in dBTP)
PRESETS = {
    "streaming": (-14.0, -1.0),  # Spotify / YouTube / Tidal normalisation
    "apple": (-16.0, -1.0),  # Apple Music sound check
    "ebu-r128": (-23.0, -1.0),  # EBU R128 broadcast
    "atsc-a85": (-24.0, -2.0),  # ATSC A/85 (US broadcast)
}
# The limiter aims this far under the ceiling: its gain curve modulates the
# signal slightly and libebur128's interpolator is not ours.
LIMIT_MARGIN_DB = 0.05
# The result is accepted when libebur128 reads at most ceiling - this.
VERIFY_MARGIN_DB = 0.005
# Loudness passes aim a hair above the target, then an exact trim lands it.
AIM_OVER_LU = 0.02
ACCEPT_OVER_LU = 0.06
MAX_PASSES = 6
# A loudness target closer than this to the ceiling only squares the waves.
MIN_HEADROOM_DB = 4.0
# Level the glue compressor sees, so its threshold means the same for any input.
GLUE_LEVEL_LUFS = -20.0


def resolve(values: dict) -> dict:
    """Expand ``preset`` and overrides into ``target_lufs`` and ``ceiling_dbtp``.

    Args:
        values: coerced parameter values (``preset``, ``lufs``, ``ceiling``...).

    Returns:
        A copy with ``target_lufs`` and ``ceiling_dbtp`` added.

    Raises:
        InvalidArgument: the target is too close to (or above) the ceiling.
    """
    out = dict(values)
    preset_lufs, preset_ceiling = PRESETS[out.get("preset") or "streaming"]
    lufs, ceiling = out.get("lufs"), out.get("ceiling")
    out["target_lufs"] = float(lufs if lufs is not None else preset_lufs)
    out["ceiling_dbtp"] = float(ceiling if ceiling is not None else preset_ceiling)
    headroom = out["ceiling_dbtp"] - out["target_lufs"]
    if headroom < MIN_HEADROOM_DB:
        raise InvalidArgument(
            f"target {out['target_lufs']:g} LUFS is only {headroom:g} dB under the "
            f"{out['ceiling_dbtp']:g} dBTP ceiling; at least {MIN_HEADROOM_DB:g} dB is "
            "needed to reach it without destroying the audio. Lower 'lufs' or raise 'ceiling'."
        )
    return out


@dataclass
class _Leveled:
    samples: np.ndarray
    gain_db: float
    passes: int
    stats: limiter.LimiterStats
    warnings: list = field(default_factory=list)


class MasterEngine(Engine):
    """Loudness mastering with EQ/glue, reference matching and a true-peak ceiling."""

    name = "master"
    kind = EngineKind.DSP
    version = "1"
    description = (
        "Masters a mix to a loudness target (streaming -14 LUFS, Apple -16, EBU R128 -23, "
        "ATSC A/85 -24) with gentle EQ and glue compression, optional matching of a "
        "reference track's tone and loudness, and an oversampled true-peak limiter that "
        "never exceeds the ceiling. Reports loudness before and after."
    )
    params = (
        Param("preset", "choice", "streaming", "Delivery target: sets loudness and ceiling.",
              choices=tuple(PRESETS)),
        Param("lufs", "float", None, "Integrated loudness target; overrides the preset "
              "(and the reference's loudness).", minimum=-40.0, maximum=-5.0, unit="LUFS"),
        Param("ceiling", "float", None, "True-peak ceiling; overrides the preset.",
              minimum=-12.0, maximum=0.0, unit="dBTP"),
        Param("eq", "bool", True, "Gentle EQ (rumble high-pass, mild shelves) and glue "
              "compression before the loudness stage."),
        Param("glue", "float", 0.5, "Glue compression amount (0 = none, 1 = about 3:1).",
              minimum=0.0, maximum=1.0),
    )
    inputs = (
        InputSpec("audio", description="The mix to master (1 to 8 channels)."),
        InputSpec("reference", required=False,
                  description="A finished track whose tone and loudness to match."),
    )

    def _validate(self, values: dict) -> dict:
        return resolve(values)

    def _run(self, handle, inputs, params, ctx: RunContext) -> RunResult:
        plan = params if "target_lufs" in params else resolve(params)
        audio = inputs["audio"]
        rate = int(audio.sample_rate)
        ctx.progress(0.0, "analysing")
        source = loudness.check_content(audio.samples, rate, "audio").astype(np.float64)
        before = loudness.measure(source, rate)
        loudness.require_defined_loudness(before.integrated_lufs, source.shape[0], rate, "audio")
        report = {"preset": plan["preset"], "before": before.to_dict()}
        reference = self._reference(inputs.get("reference"), rate, report)
        target = plan["target_lufs"]
        if reference is not None and plan.get("lufs") is None:
            target = report["reference"]["integrated_lufs"]
        ceiling = plan["ceiling_dbtp"]
        ctx.check()

        work = source
        if plan.get("eq", True):
            ctx.progress(0.1, "eq")
            work = _eq_and_glue(work, rate, before.integrated_lufs, plan.get("glue", 0.5))
            report["eq"] = {"glue": plan.get("glue", 0.5)}
            ctx.check()
        if reference is not None:
            ctx.progress(0.2, "matching reference")
            curve = match.design_curve(work, reference, rate)
            work = match.apply_fir(work, curve.taps)
            report["reference"]["match"] = curve.summary()
            ctx.check()

        dtype = audio.samples.dtype if audio.samples.dtype == np.float32 else np.float64
        leveled, out, after, fixes = _level_and_verify(work, rate, target, ceiling, dtype, ctx)
        warnings = leveled.warnings + _final_warnings(after, target, ceiling)
        report.update(
            target_lufs=round(target, 3),
            ceiling_dbtp=round(ceiling, 3),
            gain_db=round(leveled.gain_db, 3),
            after=after.to_dict(),
            limiter={
                "passes": leveled.passes,
                "max_reduction_db": round(leveled.stats.max_reduction_db, 2),
                "limited_fraction": round(leveled.stats.limited_fraction, 4),
                "reruns": fixes,
                "oversampling": limiter.oversampling_factor(rate),
            },
        )
        if warnings:
            report["warnings"] = warnings
        ctx.progress(1.0, "verifying")
        mastered = Audio(out, rate, audio.subtype, audio.name)
        return RunResult([Output(kind="mastered", audio=mastered)], report)

    @staticmethod
    def _reference(ref: Audio | None, rate: int, report: dict) -> np.ndarray | None:
        """Check and measure the reference; return it at the input's rate."""
        if ref is None:
            return None
        ref_rate = int(ref.sample_rate)
        samples = loudness.check_content(ref.samples, ref_rate, "reference").astype(np.float64)
        measured = loudness.measure(samples, ref_rate)
        loudness.require_defined_loudness(
            measured.integrated_lufs, samples.shape[0], ref_rate, "reference"
        )
        report["reference"] = measured.to_dict() | {"sample_rate": ref_rate}
        if ref_rate != rate:
            # Only its spectrum is used at our rate; loudness was read at its own.
            from scipy.signal import resample_poly

            ratio = Fraction(rate, ref_rate)
            samples = resample_poly(samples, ratio.numerator, ratio.denominator, axis=0)
            report["reference"]["resampled_to"] = rate
        return samples


def _eq_and_glue(samples: np.ndarray, rate: int, lufs: float, glue: float) -> np.ndarray:
    """Gentle tonal shaping and glue compression with pedalboard.

    The material is brought to GLUE_LEVEL_LUFS first so the compressor's
    fixed threshold acts the same on a whisper-quiet or a hot mix, and the
    level is restored afterwards (the loudness stage sets the final level).
    """
    import pedalboard as pb

    ratio = 1.0 + 2.0 * glue
    board = pb.Pedalboard([
        pb.HighpassFilter(cutoff_frequency_hz=min(28.0, rate * 0.2)),  # rumble, DC
        pb.LowShelfFilter(cutoff_frequency_hz=80.0, gain_db=0.8, q=0.707),
        pb.PeakFilter(cutoff_frequency_hz=320.0, gain_db=-0.8, q=0.8),  # mud
        pb.HighShelfFilter(cutoff_frequency_hz=min(9000.0, rate * 0.4), gain_db=1.2, q=0.707),
    ])
    if glue > 0:
        board.append(pb.Compressor(threshold_db=-26.0, ratio=ratio, attack_ms=30.0, release_ms=250.0))
    pre = 10.0 ** ((GLUE_LEVEL_LUFS - lufs) / 20.0)
    planar = np.ascontiguousarray((samples * pre).T, dtype=np.float32)
    processed = board(planar, float(rate), reset=True)
    out = processed.T.astype(np.float64) / pre
    return _fit_length(out, samples.shape[0])


def _fit_length(samples: np.ndarray, frames: int) -> np.ndarray:
    """Pad with zeros or cut so the array has exactly ``frames`` frames."""
    if samples.shape[0] >= frames:
        return samples[:frames]
    pad = np.zeros((frames - samples.shape[0], samples.shape[1]), samples.dtype)
    return np.concatenate([samples, pad])


def _level_and_verify(samples, rate, target, ceiling, dtype, ctx):
    """Level and limit, then verify with libebur128; re-level if a peak is over.

    The limiter's detector and libebur128's interpolator differ (libebur128
    oversamples only 2x from 96 kHz): if libebur128 reads over the ceiling,
    the limiter's own ceiling is lowered by the overshoot and the loudness
    iteration runs again, so the loudness target still holds.

    Returns:
        (_Leveled, output samples in ``dtype``, final Measurement, re-runs).
    """
    ctx.progress(0.3, "loudness")
    envelope = limiter.peak_envelope(samples, rate)
    start = loudness.integrated_loudness(samples, rate)
    allowed = ceiling - VERIFY_MARGIN_DB
    limit_db = ceiling - LIMIT_MARGIN_DB
    for reruns in range(3):
        leveled = _level(samples, envelope, start, rate, target, limit_db, ctx)
        ctx.progress(0.9, "verifying")
        out = leveled.samples.astype(dtype)
        after = loudness.measure(out, rate)
        if after.true_peak_dbtp <= allowed:
            return leveled, out, after, reruns
        limit_db -= after.true_peak_dbtp - allowed + 0.02
    out, after, _ = _verify(out, rate, ceiling)
    return leveled, out, after, reruns + 1


def _level(
    samples: np.ndarray,
    envelope: np.ndarray,
    start: float,
    rate: int,
    target: float,
    limit_db: float,
    ctx: RunContext,
) -> _Leveled:
    """Gain to ``target`` and limit to ``ceiling``, iterating until loudness lands.

    Limiting removes loudness, so each pass measures the limited result and
    corrects the gain with a secant step (the loudness-vs-gain slope falls
    below 1 as limiting deepens). Passes aim AIM_OVER_LU above the target and
    a final scalar trim lands exactly on it: a cut never raises a peak.
    """
    aim = target + AIM_OVER_LU
    gain, history = aim - start, []
    for passes in range(1, MAX_PASSES + 1):
        ctx.check()
        ctx.progress(0.35 + 0.5 * passes / (MAX_PASSES + 1), "limiting")
        reduction = limiter.gain_curve(envelope, rate, limit_db, gain_db=gain)
        lufs = _loudness_with(samples, rate, gain, reduction)
        history.append((gain, lufs))
        if target <= lufs <= target + ACCEPT_OVER_LU:
            break
        gain = _next_gain(history, aim)
    trim = target - lufs
    if trim > 0:  # short of the target: raise only if the ceiling allows it
        peak = float(np.max(envelope * limiter.db_to_gain(gain - reduction)))
        trim = min(trim, limit_db - loudness.to_db(peak))
    out = limiter.apply_gain(samples, gain - reduction + trim)
    warnings = []
    if lufs + trim < target - 0.05:
        warnings.append(
            f"loudness stopped {target - lufs - trim:.2f} LU short of {target:g} LUFS "
            f"after {passes} limiter passes; the material cannot get louder under a "
            f"{limit_db:.2f} dBTP limit without more limiting"
        )
    stats = limiter.LimiterStats(
        max_reduction_db=float(reduction.max()),
        limited_fraction=float(np.mean(reduction > 0.1)),
    )
    return _Leveled(out, gain + trim, passes, stats, warnings)


def _loudness_with(samples: np.ndarray, rate: int, gain_db: float, reduction: np.ndarray) -> float:
    """Integrated loudness of the signal after gain and limiting."""
    return loudness.integrated_loudness(limiter.apply_gain(samples, gain_db - reduction), rate)


def _next_gain(history: list, aim: float) -> float:
    """Secant step on loudness(gain) towards ``aim`` (slope clamped to 0.05..1)."""
    gain, lufs = history[-1]
    slope = 1.0
    if len(history) >= 2:
        prev_gain, prev_lufs = history[-2]
        if abs(gain - prev_gain) > 1e-9:
            slope = (lufs - prev_lufs) / (gain - prev_gain)
    slope = min(max(slope, 0.05), 1.0)
    step = (aim - lufs) / slope
    return gain + max(min(step, 24.0), -24.0)


def _verify(samples: np.ndarray, rate: int, ceiling: float) -> tuple[np.ndarray, loudness.Measurement, bool]:
    """Last resort: measure with libebur128 and cut the whole clip if over.

    A scalar gain scales libebur128's true-peak reading exactly, so one cut
    always lands under the ceiling (at the price of a little loudness).
    ``samples`` must already have the output's dtype.

    Returns:
        (samples, final measurement, whether a cut was applied).
    """
    after = loudness.measure(samples, rate)
    allowed = ceiling - VERIFY_MARGIN_DB
    if after.true_peak_dbtp <= allowed:
        return samples, after, False
    samples = limiter.apply_gain(samples, allowed - 0.005 - after.true_peak_dbtp)
    return samples, loudness.measure(samples, rate), True


def _final_warnings(after: loudness.Measurement, target: float, ceiling: float) -> list:
    warnings = []
    if abs(after.integrated_lufs - target) > 0.1:
        warnings.append(
            f"final loudness {after.integrated_lufs:.2f} LUFS is "
            f"{after.integrated_lufs - target:+.2f} LU from the {target:g} LUFS target"
        )
    if after.true_peak_dbtp > ceiling:
        warnings.append(f"true peak {after.true_peak_dbtp:.2f} dBTP is over the {ceiling:g} dBTP ceiling")
    return warnings
