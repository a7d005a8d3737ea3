"""Crop paths planned like a camera operator, one shot at a time, along one axis.

Given where the subject is in each frame of a shot (its centre and half-size
along the axis the crop can move), plan the crop's position so that:

1. the subject is never cut off (it lies inside the crop in every frame; when
   it is wider than the crop, the crop is centred on it);
2. the camera holds still when the subject moves little (its whole range fits
   in a region of the crop: "hold"), and otherwise pans smoothly ("pan");
3. a pan's speed and acceleration stay under bounds wherever rule 1 allows.

The pan is a Whittaker smoother (least squares to the desired position plus a
penalty on the second difference: a banded solve) whose frames outside the
allowed corridor are re-weighted until the path stays inside it; speed and
acceleration are then limited by iterating forward/backward clamps within
the corridor. Paths never cross a shot boundary: the caller plans each shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLD_RANGE = 0.06  # a subject whose centre ranges over <= 6 % of the crop: hold still
SMOOTHING_SECONDS = 0.3  # the smoother's time scale: shorter wobbles are ignored
MAX_SPEED = 1.5  # crop widths per second
MAX_ACCEL = 3.0  # crop widths per second squared


@dataclass
class Plan:
    """A shot's crop positions (the crop's low edge, in pixels, per frame) and how."""

    positions: np.ndarray
    mode: str  # "hold" | "pan"
    fits: bool  # False when the subject is at times wider than the crop


def plan_shot(centres: np.ndarray, halves: np.ndarray, frame: int, crop: int,
              fps: float, lead: np.ndarray | None = None) -> Plan:
    """Plan one shot.

    Args:
        centres: subject centre per frame in pixels (NaN where unknown: filled
            from the nearest known frames; all NaN: the frame's centre).
        halves: subject half-size per frame in pixels (NaN: 0).
        frame: the frame's size along this axis.
        crop: the crop's size along this axis (<= frame).
        fps: frames per second (speed and smoothing are in seconds).
        lead: the last positions (one or two) of the part of this shot already
            planned, when a long shot is planned in pieces: the path continues
            from them with the same position and speed.

    Returns:
        Plan with positions in [0, frame - crop].
    """
    centres = _filled(np.asarray(centres, dtype=np.float64), frame / 2.0)
    halves = np.nan_to_num(np.asarray(halves, dtype=np.float64), nan=0.0)
    lo, hi, fits = _corridor(centres, halves, frame, crop)
    lead = np.asarray(lead if lead is not None else [], dtype=np.float64)[-2:]
    if np.ptp(centres) <= HOLD_RANGE * crop and lo.max() <= hi.min():
        x = np.clip(np.median(centres) - crop / 2.0, lo.max(), hi.min())
        if not len(lead) or _holds_at(lead, lo, hi):
            x = lead[-1] if len(lead) else x  # a held camera stays where it was
            return Plan(np.full(len(centres), x), "hold", fits)
    desired = np.clip(centres - crop / 2.0, lo, hi)
    n = len(lead)  # pinned frames in front: the path leaves them at their speed
    desired, lo, hi = (np.concatenate([lead, v]) for v in (desired, lo, hi))
    weights = np.concatenate([np.full(n, 1e9), np.ones(len(centres))])
    path = _smooth_inside(desired, lo, hi, (SMOOTHING_SECONDS * fps) ** 4, weights)
    path = _limit(path, lo, hi, MAX_SPEED * crop / fps, MAX_ACCEL * crop / fps ** 2)
    return Plan(path[n:], "pan", fits)


def _holds_at(lead: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """The previous piece held still at a place that still frames this one."""
    return bool(np.ptp(lead) < 1e-6 and lo.max() <= lead[-1] <= hi.min())


def _filled(values: np.ndarray, default: float) -> np.ndarray:
    known = np.flatnonzero(np.isfinite(values))
    if not len(known):
        return np.full(len(values), default)
    return np.interp(np.arange(len(values)), known, values[known])


def _corridor(centres, halves, frame: int, crop: int):
    """Per frame, the crop positions that keep the subject inside (and the crop in frame)."""
    top = float(frame - crop)
    lo = np.clip(centres + halves - crop, 0.0, top)
    hi = np.clip(centres - halves, 0.0, top)
    wide = lo > hi  # the subject does not fit: centre the crop on it
    centred = np.clip(centres - crop / 2.0, 0.0, top)
    lo[wide] = hi[wide] = centred[wide]
    return lo, hi, not wide.any()


def _smooth_inside(desired, lo, hi, lam: float, weights=None, rounds: int = 20) -> np.ndarray:
    """Whittaker-smooth ``desired``; frames that leave [lo, hi] get pulled back harder."""
    from scipy.linalg import solve_banded

    n = len(desired)
    if n < 4:  # too short to smooth: a few frames at a cut
        return np.clip(desired, lo, hi)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    target = desired.copy()
    for _ in range(rounds):
        path = solve_banded((2, 2), _banded(weights, lam), weights * target)
        outside = (path < lo - 0.01) | (path > hi + 0.01)
        if not outside.any():
            return path
        target = np.where(outside, np.clip(path, lo, hi), target)
        weights = np.where(outside, weights * 10.0, weights)
    return np.clip(path, lo, hi)


def _banded(weights, lam: float) -> np.ndarray:
    """W + lam * D'D for the second difference D, in solve_banded's (5, n) layout."""
    n = len(weights)
    d = np.zeros((5, n))
    main = np.full(n, 6.0)
    main[[0, -1]], main[[1, -2]] = 1.0, 5.0
    first = np.full(n - 1, -4.0)
    first[[0, -1]] = -2.0
    second = np.ones(n - 2)
    d[2] = weights + lam * main
    d[1, 1:] = d[3, :-1] = lam * first
    d[0, 2:] = d[4, :-2] = lam * second
    return d


def _limit(path, lo, hi, vmax: float, amax: float, rounds: int = 50) -> np.ndarray:
    """Clamp speed and acceleration where the corridor allows (the corridor wins)."""
    x = path.copy()
    if _within(x, vmax, amax):  # the smoother already obeys: leave it untouched
        return x
    for _ in range(rounds):
        before = x.copy()
        for order in (range(1, len(x)), range(len(x) - 2, -1, -1)):
            for t in order:
                prev = t - 1 if order.step == 1 else t + 1
                far = prev - 1 if order.step == 1 else prev + 1
                low, high = x[prev] - vmax, x[prev] + vmax
                if 0 <= far < len(x):  # at a shot's edge the camera may already be moving
                    speed = x[prev] - x[far]
                    low, high = max(low, x[prev] + speed - amax), min(high, x[prev] + speed + amax)
                if low <= high:
                    x[t] = min(max(x[t], low), high)
                x[t] = min(max(x[t], lo[t]), hi[t])
        if np.abs(x - before).max() < 1e-6:
            break
    return x


def _within(x, vmax: float, amax: float) -> bool:
    return bool((np.abs(np.diff(x)) <= vmax + 1e-9).all()
                and (np.abs(np.diff(x, 2)) <= amax + 1e-9).all())


def motion_stats(positions: np.ndarray, fps: float) -> dict:
    """Speed and acceleration of a path (pixels per second, per second squared)."""
    v = np.diff(positions) * fps
    a = np.diff(positions, 2) * fps * fps
    return {"max_speed": float(np.abs(v).max()) if len(v) else 0.0,
            "max_accel": float(np.abs(a).max()) if len(a) else 0.0,
            "max_step": float(np.abs(np.diff(positions)).max()) if len(positions) > 1 else 0.0}
