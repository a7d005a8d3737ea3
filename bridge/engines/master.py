"""The ``master`` engine: EQ and glue, loudness to a target, true-peak ceiling.

Stages: analysing -> eq -> matching reference (optional) -> loudness ->
limiting (1-6 passes) -> verifying (re-level with a lower limit if
libebur128 still reads a peak over the ceiling). Loudness and peaks are judged by
libebur128 (``bridge.dsp.loudness``); the ceiling is held by the
oversampled look-ahead limiter in ``bridge.dsp.limiter``.

Memory stays bounded however long the file: every stage walks it in chunks
(``bridge.dsp.chunks``). The EQ'd (and matched) mix and the result are job
arrays from ``ctx.array`` (float32, disk-backed when large); the limiter
keeps one peak per 0.5 ms block; each loudness pass meters "mix x gain
curve" chunk by chunk without storing it.

A target the material cannot reach (a DC offset or infrasonic energy, which
take up peak headroom but carry no loudness; dynamics the ceiling cannot
squeeze that far) fails the job before anything is written, unless the
caller passes ``best_effort``: then the loudest result the ceiling allows is
delivered with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.engine import Audio, Engine, EngineKind, InputSpec, Output, Param, RunContext, RunResult
from ..core.errors import InvalidArgument, MediaError
from ..dsp import chunks, limiter, loudness, match

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
# Farther than this from the target, the target counts as missed.
TARGET_TOLERANCE_LU = 0.1


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
    """The accepted loudness pass: its limiter (static gain included) and trim."""

    curve: limiter.GainCurve
    trim_db: float
    passes: int
    warnings: list = field(default_factory=list)
    stats: limiter.LimiterStats | None = None  # filled in when rendered

    @property
    def gain_db(self) -> float:
        return self.curve.gain_db + self.trim_db


class MasterEngine(Engine):
    """Loudness mastering with EQ/glue, reference matching and a true-peak ceiling."""

    name = "master"
    kind = EngineKind.DSP
    version = "2"  # 2: chunked (float32 intermediates); unreachable targets fail
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
        Param("best_effort", "bool", False, "Deliver the loudest result the ceiling allows "
              "when the target cannot be reached, instead of failing."),
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
        source = loudness.check_content(audio.samples, rate, "audio")
        before = loudness.measure(source, rate)
        loudness.require_defined_loudness(before.integrated_lufs, source.shape[0], rate, "audio")
        report = {"preset": plan["preset"], "before": before.to_dict()}
        reference = self._reference(inputs.get("reference"), rate, report)
        target = plan["target_lufs"]
        if reference is not None and plan.get("lufs") is None:
            target = report["reference"]["integrated_lufs"]
        ceiling = plan["ceiling_dbtp"]
        ctx.check()

        work = _shape(source, rate, before.integrated_lufs, plan, reference, report, ctx)
        # Unshaped, the mix is the source: its loudness is already known.
        start = before.integrated_lufs if work is source else None
        out = _output(work, source, audio.samples.dtype, ctx)
        leveled, after, fixes = _level_and_verify(work, rate, target, ceiling, out, ctx, start)
        reason = ""
        if _missed(after, target):
            reason, fix = _why_missed(source, before, after, target, ceiling)
            if not plan.get("best_effort"):
                raise MediaError(_missed_message(after, target, ceiling, reason, fix))
        warnings = leveled.warnings + _final_warnings(after, target, ceiling, reason)
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
        """Check and measure the reference; return its average spectrum at the input's rate."""
        if ref is None:
            return None
        ref_rate = int(ref.sample_rate)
        samples = loudness.check_content(ref.samples, ref_rate, "reference")
        measured = loudness.measure(samples, ref_rate)
        loudness.require_defined_loudness(
            measured.integrated_lufs, samples.shape[0], ref_rate, "reference"
        )
        report["reference"] = measured.to_dict() | {"sample_rate": ref_rate}
        if ref_rate != rate:
            # Only its spectrum is used at our rate (resampled chunk by chunk
            # into the estimate); loudness was read at its own.
            report["reference"]["resampled_to"] = rate
        return match.reference_spectrum(samples, ref_rate, rate)[1]


def _shape(source, rate, lufs, plan, reference, report, ctx) -> np.ndarray:
    """EQ/glue and reference matching; returns the mix to level (``source`` if neither)."""
    work, spectrum = source, None
    if reference is not None:
        spectrum = match.Spectrum(rate, match.segment_for(rate, source.shape[0]))
    if plan.get("eq", True):
        ctx.progress(0.1, "eq")
        work = _eq_and_glue(source, rate, lufs, plan.get("glue", 0.5), ctx, spectrum)
        report["eq"] = {"glue": plan.get("glue", 0.5)}
        ctx.check()
    elif spectrum is not None:
        for start, stop in chunks.spans(source.shape[0]):
            spectrum.add(chunks.read(source, start, stop))
    if reference is not None:
        ctx.progress(0.2, "matching reference")
        freqs, power = spectrum.result()
        curve = match.curve_from_spectra(freqs, power, reference, rate)
        # The EQ'd mix is ours to overwrite; the caller's source is not.
        dst = ctx.array(*work.shape) if work is source else work
        work = match.apply_fir_into(work, curve.taps, dst, check=ctx.check)
        report["reference"]["match"] = curve.summary()
        ctx.check()
    return work


def _eq_and_glue(source, rate: int, lufs: float, glue: float, ctx: RunContext,
                 spectrum: match.Spectrum | None = None) -> np.ndarray:
    """Gentle tonal shaping and glue compression with pedalboard, chunk by chunk.

    The material is brought to GLUE_LEVEL_LUFS first so the compressor's
    fixed threshold acts the same on a whisper-quiet or a hot mix, and the
    level is restored afterwards (the loudness stage sets the final level).
    The board keeps its filter and compressor state across chunks
    (``reset=False``), which gives exactly the whole-file result.

    Returns:
        The shaped mix, a float32 job array (disk-backed when large); fed
        to ``spectrum`` too when given (reference matching needs it).
    """
    board = _board(rate, glue)
    pre = 10.0 ** ((GLUE_LEVEL_LUFS - lufs) / 20.0)
    out = ctx.array(*source.shape)
    for start, stop in chunks.spans(source.shape[0]):
        if start:
            ctx.check()
        planar = np.ascontiguousarray((chunks.read(source, start, stop) * pre).T, dtype=np.float32)
        processed = board(planar, float(rate), reset=start == 0)
        # These filters and the compressor have no latency: each chunk comes back whole.
        shaped = _fit_length(processed.T.astype(np.float64) / pre, stop - start)
        if spectrum is not None:
            spectrum.add(shaped)
        out[start:stop] = shaped
    return out


def _board(rate: int, glue: float):
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
    return board


def _fit_length(samples: np.ndarray, frames: int) -> np.ndarray:
    """Pad with zeros or cut so the array has exactly ``frames`` frames."""
    if samples.shape[0] >= frames:
        return samples[:frames]
    pad = np.zeros((frames - samples.shape[0], samples.shape[1]), samples.dtype)
    return np.concatenate([samples, pad])


def _output(work: np.ndarray, source: np.ndarray, dtype, ctx: RunContext) -> np.ndarray:
    """The result array: float32 input stays float32 (a job array, disk-backed when
    large), anything else becomes float64. A shaped float32 mix is the engine's
    own and is overwritten by the result, which saves a file-length array."""
    if dtype != np.float32:
        return np.zeros(work.shape)
    return ctx.array(*work.shape) if work is source else work


def _level_and_verify(work, rate, target, ceiling, out, ctx, start=None):
    """Level and limit, then verify with libebur128; re-level if a peak is over.

    The limiter's detector and libebur128's interpolator differ (libebur128
    oversamples only 2x from 96 kHz): if libebur128 reads over the ceiling,
    the limiter's own ceiling is lowered by the overshoot and the loudness
    iteration runs again, so the loudness target still holds.

    Args:
        out: where the result goes (``work`` itself is allowed: it is then
            metered first and written once accepted).
        start: the mix's integrated loudness when already measured.

    Returns:
        (_Leveled, final Measurement of ``out``, re-runs).
    """
    ctx.progress(0.3, "loudness")
    peaks = _block_peaks(work, rate, ctx)
    if start is None:
        start = loudness.integrated_loudness(work, rate)
    allowed = ceiling - VERIFY_MARGIN_DB
    limit_db = ceiling - LIMIT_MARGIN_DB
    for reruns in range(3):
        leveled = _level(work, peaks, start, rate, target, limit_db, ctx)
        ctx.progress(0.9, "verifying")
        # Over work itself, meter only: the mix is still needed if this is re-run.
        after = _render(work, leveled, out, rate, ctx, write=out is not work)
        if after.true_peak_dbtp <= allowed:
            break
        limit_db -= after.true_peak_dbtp - allowed + 0.02
    if out is work:  # metered exactly as it is written now
        _render(work, leveled, out, rate, ctx, meter=False)
    if after.true_peak_dbtp > allowed:
        _, after, _ = _verify(out, rate, ceiling, after)
        reruns += 1
    return leveled, after, reruns


def _block_peaks(work: np.ndarray, rate: int, ctx: RunContext) -> np.ndarray:
    """The limiter's block peaks; float32 (a job array) when the mix is float32,
    whose values it then holds exactly."""
    nblocks = -(-work.shape[0] // limiter.block_frames(rate))
    out = ctx.array(nblocks, 1)[:, 0] if work.dtype == np.float32 else np.zeros(nblocks)
    return limiter.block_peaks(work, rate, out, check=ctx.check)


def _level(
    work: np.ndarray,
    peaks: np.ndarray,
    start: float,
    rate: int,
    target: float,
    limit_db: float,
    ctx: RunContext,
) -> _Leveled:
    """Gain to ``target`` and limit to ``limit_db``, iterating until loudness lands.

    Limiting removes loudness, so each pass measures the limited result and
    corrects the gain with a secant step (the loudness-vs-gain slope falls
    below 1 as limiting deepens). Passes aim AIM_OVER_LU above the target and
    a final scalar trim lands exactly on it: a cut never raises a peak. The
    trim is taken from the last pass measured, with that pass's gain.
    """
    aim = target + AIM_OVER_LU
    gain, history = aim - start, []
    for passes in range(1, MAX_PASSES + 1):
        ctx.check()
        ctx.progress(0.35 + 0.5 * passes / (MAX_PASSES + 1), "limiting")
        curve = limiter.GainCurve(peaks, work.shape[0], rate, limit_db, gain_db=gain)
        lufs = _loudness_with(work, rate, curve, ctx)
        history.append((gain, lufs))
        if target <= lufs <= target + ACCEPT_OVER_LU:
            break
        gain = _next_gain(history, aim)
    trim = target - lufs
    if trim > 0:  # short of the target: raise only if the ceiling allows it
        trim = min(trim, limit_db - loudness.to_db(_peak_with(work, rate, curve, ctx)))
    warnings = []
    if lufs + trim < target - 0.05:
        warnings.append(
            f"loudness stopped {target - lufs - trim:.2f} LU short of {target:g} LUFS "
            f"after {passes} limiter passes; the material cannot get louder under a "
            f"{limit_db:.2f} dBTP limit without more limiting"
        )
    return _Leveled(curve, trim, passes, warnings)


def _limited(work: np.ndarray, curve: limiter.GainCurve, start: int, stop: int,
             trim_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[start, stop)`` after gain, limiting and trim (float64), and the
    limiter's attenuation there."""
    reduction = curve.span(start, stop)
    gains = limiter.db_to_gain(curve.gain_db - reduction + trim_db)
    return chunks.read(work, start, stop) * gains[:, None], reduction


def _loudness_with(work: np.ndarray, rate: int, curve: limiter.GainCurve, ctx: RunContext) -> float:
    """Integrated loudness of the signal after gain and limiting (never stored)."""
    meter = loudness.Meter(work.shape[1], rate, full=False)
    for start, stop in chunks.spans(work.shape[0]):
        if start:
            ctx.check()
        meter.add(_limited(work, curve, start, stop)[0])
    return meter.integrated()


def _peak_with(work: np.ndarray, rate: int, curve: limiter.GainCurve, ctx: RunContext) -> float:
    """Highest envelope peak after gain and limiting, by the limiter's detector."""
    peak = 0.0
    for start, stop in chunks.spans(work.shape[0]):
        if start:
            ctx.check()
        envelope = limiter.envelope_span(work, rate, start, stop)
        gains = limiter.db_to_gain(curve.gain_db - curve.span(start, stop))
        peak = max(peak, float(np.max(envelope * gains, initial=0.0)))
    return peak


def _render(work, leveled: _Leveled, out: np.ndarray, rate: int, ctx: RunContext,
            write: bool = True, meter: bool = True) -> loudness.Measurement | None:
    """Compute the result chunk by chunk in ``out``'s dtype: write it into ``out``,
    meter it with libebur128, or both; set ``leveled.stats``.

    Returns:
        The Measurement of exactly these samples (None when not metered).
    """
    full = loudness.Meter(work.shape[1], rate, full=True) if meter else None
    deepest, limited = 0.0, 0
    for start, stop in chunks.spans(work.shape[0]):
        if start:
            ctx.check()
        block, reduction = _limited(work, leveled.curve, start, stop, leveled.trim_db)
        block = block.astype(out.dtype)
        if write:
            out[start:stop] = block
        if full is not None:
            full.add(block)
        deepest = max(deepest, float(reduction.max(initial=0.0)))
        limited += int(np.count_nonzero(reduction > 0.1))
    leveled.stats = limiter.LimiterStats(deepest, limited / max(work.shape[0], 1))
    return full.measurement() if full is not None else None


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


def _verify(samples: np.ndarray, rate: int, ceiling: float,
            measured: loudness.Measurement | None = None) -> tuple[np.ndarray, loudness.Measurement, bool]:
    """Last resort: measure with libebur128 and cut the whole clip if over.

    A scalar gain scales libebur128's true-peak reading exactly, so one cut
    always lands under the ceiling (at the price of a little loudness).
    ``samples`` must already have the output's dtype; a cut is applied to
    it in place, chunk by chunk (it is the engine's own result array).

    Args:
        measured: ``samples``' Measurement when already known.

    Returns:
        (samples, final measurement, whether a cut was applied).
    """
    after = measured or loudness.measure(samples, rate)
    allowed = ceiling - VERIFY_MARGIN_DB
    if after.true_peak_dbtp <= allowed:
        return samples, after, False
    gain = limiter.db_to_gain(allowed - 0.005 - after.true_peak_dbtp).astype(samples.dtype)
    for start, stop in chunks.spans(samples.shape[0]):
        samples[start:stop] *= gain
    return samples, loudness.measure(samples, rate), True


def _missed(after: loudness.Measurement, target: float) -> bool:
    """Whether the final loudness is farther than the tolerance from the target."""
    return not abs(after.integrated_lufs - target) <= TARGET_TOLERANCE_LU


def _why_missed(source, before, after, target: float, ceiling: float) -> tuple[str, str]:
    """The likely reason a target was missed (from one more pass over the source),
    and what would fix it."""
    sums, squares = 0.0, 0.0
    for start, stop in chunks.spans(source.shape[0]):
        block = chunks.read(source, start, stop)
        sums = sums + block.sum(axis=0)
        squares = squares + np.square(block).sum(axis=0)
    frames = max(source.shape[0], 1)
    power = float(np.sum(squares)) / frames  # summed over channels, as BS.1770 does
    dc_share = float(np.sum((sums / frames) ** 2)) / power if power > 0 else 0.0
    unweighted = -0.691 + 10.0 * math.log10(power) if power > 0 else -math.inf
    cleanup = "Remove the DC offset or rumble (e.g. re-export it through a high-pass)"
    if dc_share > 0.5:
        return (f"{dc_share:.0%} of the input's energy is a DC offset (a constant level), which "
                "takes up peak headroom but carries no loudness, and what is audible is too "
                "little to bring to the target under the ceiling"), cleanup
    if unweighted - before.integrated_lufs > 10.0:
        return (f"most of the input's energy is infrasonic (below about 20 Hz: it reads "
                f"{unweighted - before.integrated_lufs:.0f} dB louder unweighted than "
                "K-weighted), which takes up peak headroom but carries no loudness"), cleanup
    return (f"the material is too dynamic for this target under the ceiling: even limited, "
            f"its peaks stand {after.true_peak_dbtp - after.integrated_lufs:.1f} dB above its "
            f"loudness, and a {target:g} LUFS target under a {ceiling:g} dBTP ceiling leaves "
            f"{ceiling - target:g} dB"), "Compress it first, raise 'ceiling'"


def _missed_message(after: loudness.Measurement, target: float, ceiling: float,
                    reason: str, fix: str) -> str:
    miss = after.integrated_lufs - target
    return (
        f"audio did NOT reach the {target:g} LUFS target: mastered under the {ceiling:g} dBTP "
        f"ceiling it measures {after.integrated_lufs:.2f} LUFS, {abs(miss):.2f} LU "
        f"{'short of' if miss < 0 else 'over'} it (at most {TARGET_TOLERANCE_LU:g} LU is "
        f"allowed). Likely reason: {reason}. Nothing was written. {fix}, lower the target with "
        "'lufs', or pass best_effort=true (`--best-effort`) to get the loudest result the "
        "ceiling allows."
    )


def _final_warnings(after: loudness.Measurement, target: float, ceiling: float,
                    reason: str = "") -> list:
    warnings = []
    if _missed(after, target):
        warnings.append(
            f"target not reached: final loudness {after.integrated_lufs:.2f} LUFS is "
            f"{after.integrated_lufs - target:+.2f} LU from the {target:g} LUFS target "
            f"(best_effort: the loudest result the {ceiling:g} dBTP ceiling allows)"
            + (f"; likely reason: {reason}" if reason else "")
        )
    if after.true_peak_dbtp > ceiling:
        warnings.append(f"true peak {after.true_peak_dbtp:.2f} dBTP is over the {ceiling:g} dBTP ceiling")
    return warnings
