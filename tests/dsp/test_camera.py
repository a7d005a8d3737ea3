"""Crop paths: hold when the subject barely moves, pan smoothly, never cut the subject off."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.dsp.camera import MAX_ACCEL, MAX_SPEED, motion_stats, plan_shot

FPS, FRAME, CROP = 30.0, 1920, 608  # 16:9 1080p to 9:16


def test_a_static_subject_with_jittery_detections_gets_a_locked_off_shot():
    rng = np.random.default_rng(0)
    n = 150
    centres = 1200 + rng.normal(0, 4, n)  # detector noise, +-4 px
    plan = plan_shot(centres, np.full(n, 60.0), FRAME, CROP, FPS)
    assert plan.mode == "hold" and plan.fits
    assert motion_stats(plan.positions, FPS)["max_step"] == 0.0  # <= 0.5 px per frame
    assert abs(plan.positions[0] + CROP / 2 - 1200) < 10


def test_a_moving_subject_is_followed_smoothly_and_never_cut_off():
    n = int(8 * FPS)
    t = np.arange(n) / FPS
    centres = 960 + 600 * np.sin(2 * np.pi * t / 8)  # across the frame and back
    halves = np.full(n, 90.0)
    plan = plan_shot(centres, halves, FRAME, CROP, FPS)
    assert plan.mode == "pan" and plan.fits
    x = plan.positions
    assert (x >= 0).all() and (x <= FRAME - CROP).all()
    assert (centres - halves >= x - 1e-6).all() and (centres + halves <= x + CROP + 1e-6).all()
    error = np.abs(x + CROP / 2 - centres).mean() / CROP
    assert error <= 0.03, error
    stats = motion_stats(x, FPS)
    assert stats["max_speed"] <= MAX_SPEED * CROP + 1e-6
    assert stats["max_accel"] <= MAX_ACCEL * CROP + 1e-6


def test_a_subject_faster_than_the_speed_limit_is_still_kept_in_frame():
    n = int(2 * FPS)
    centres = np.linspace(300, 1620, int(0.5 * FPS))  # 2640 px/s: above the 1.5 crop widths/s limit
    n = len(centres)
    plan = plan_shot(centres, np.full(n, 100.0), FRAME, CROP, FPS)
    x = plan.positions
    assert (centres - 100 >= x - 1e-6).all() and (centres + 100 <= x + CROP + 1e-6).all()


def test_unknown_frames_are_filled_and_a_wider_subject_is_centred():
    centres = np.array([np.nan, np.nan, 500.0, np.nan, 520.0, np.nan])
    plan = plan_shot(centres, np.full(6, 10.0), FRAME, CROP, FPS)
    assert np.isfinite(plan.positions).all()
    wide = plan_shot(np.full(40, 1000.0), np.full(40, 400.0), FRAME, CROP, FPS)
    assert not wide.fits
    np.testing.assert_allclose(wide.positions, 1000 - CROP / 2)
    empty = plan_shot(np.full(10, np.nan), np.full(10, np.nan), FRAME, CROP, FPS)
    np.testing.assert_allclose(empty.positions, (FRAME - CROP) / 2)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_very_short_shots(n):
    plan = plan_shot(np.linspace(200, 1700, n), np.full(n, 50.0), FRAME, CROP, FPS)
    assert len(plan.positions) == n and (plan.positions >= 0).all()


def test_detector_noise_on_a_moving_subject_does_not_shake_the_pan():
    rng = np.random.default_rng(1)
    n = int(6 * FPS)
    truth = np.linspace(500, 1400, n)
    plan = plan_shot(truth + rng.normal(0, 6, n), np.full(n, 80.0), FRAME, CROP, FPS)
    assert plan.mode == "pan"
    shake = np.diff(plan.positions, 2)
    assert np.abs(shake).max() < 0.5  # px per frame^2, against +-6 px of detection noise
    assert np.abs(plan.positions + CROP / 2 - truth).mean() < 0.03 * CROP
