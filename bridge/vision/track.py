"""A shot's subject path: detections at a reduced rate, template tracking between them.

The subject finder is the expensive part (Haar cascades), so it runs on one
analysis frame in every few; the frames between are followed by matching the
last detection's patch (normalised cross-correlation in a window around it),
and a tracked stretch that ends at a new detection is pulled onto it
linearly, so tracker drift never accumulates past a detection. A shot keeps
one kind of subject: if faces are found in most detections, a frame where
the cascade misses is tracked instead of jumping to whatever is salient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .subjects import Subject, SubjectFinder, subject_of

MAIN_SHARE = 0.5  # a kind of subject found in this share of a shot's detections leads it
MATCH_MIN = 0.5  # correlation below this: the tracker has lost the subject
SEARCH = 1.0  # search window margin, in subject sizes


@dataclass
class ShotTrack:
    """The subject box per analysis frame of one shot (NaN where unknown)."""

    boxes: np.ndarray  # (analysis frames, 4): x, y, w, h in full-frame pixels
    source: str  # "faces" | "saliency" | "motion" | "none"
    detections: int  # detections of that kind
    tracked: int  # frames filled by the tracker


def track_shot(grays: list[np.ndarray], finder: SubjectFinder, detect_every: int) -> ShotTrack:
    """Find and follow the subject through one shot's analysis frames.

    Args:
        grays: the shot's analysis frames (small grayscale), in order.
        finder: the subject finder (its scale maps analysis pixels to full frames).
        detect_every: run the finder on every n-th analysis frame (and the first).

    Returns:
        ShotTrack with one box per analysis frame.
    """
    finder.reset()
    found = {k: s for k in range(0, len(grays), max(1, detect_every))
             if (s := finder.find(grays[k])) is not None}
    found = _persistent(found)
    source = _main_source(list(found.values()), finder.modes)
    small = np.full((len(grays), 4), np.nan)
    anchors = sorted(k for k, s in found.items() if s.source == source)
    for k in anchors:
        small[k] = [v / finder.scale for v in (found[k].x, found[k].y, found[k].w, found[k].h)]
    tracked = _fill_between(grays, small, anchors)
    return ShotTrack(small * finder.scale, source if anchors else "none", len(anchors), tracked)


def _persistent(found: dict[int, Subject]) -> dict[int, Subject]:
    """Drop faces that do not continue the faces of the neighbouring detections.

    The cascade fires on a collar or a texture now and then; a real face (or both
    faces of a two-shot) is where its neighbours say: between the faces of the
    detections before and after (motion is smooth at this rate), or where the two
    detections on one side lead at a shot's end, or where the next or previous
    detection saw it again (it jumped and stayed). A detection left with no face
    counts as missed (the tracker covers it). With one neighbour, nothing can
    be told apart and all is kept.
    """
    keys = sorted(k for k, s in found.items() if s.source == "faces")
    out = dict(found)
    for index, k in enumerate(keys):
        if 0 < index < len(keys) - 1:
            sides = [found[keys[index - 1]].parts, found[keys[index + 1]].parts]
        elif len(keys) >= 3:  # an end: the two on the inside lead to it
            near, far = (keys[1], keys[2]) if index == 0 else (keys[-2], keys[-3])
            sides = [found[near].parts, found[far].parts]
        else:
            continue
        adjacent = [q for n in keys[max(0, index - 1):index + 2] if n != k for q in found[n].parts]
        kept = [p for p in found[k].parts if _continues(p, sides, between=0 < index < len(keys) - 1)
                or any(_same_place(p, q) for q in adjacent)]
        if not kept:
            del out[k]
        elif len(kept) < len(found[k].parts):
            out[k] = subject_of(kept, "faces")
    return out


def _continues(box, sides, between: bool) -> bool:
    """``box`` is where ``sides`` (the parts of two other detections) put a face: their
    midpoint when it lies between them, else the line through them carried on."""
    centre = _centre(box)
    first = _centre(min(sides[0], key=lambda q: np.hypot(*(_centre(q) - centre))))
    second = _centre(min(sides[1], key=lambda q: np.hypot(*(_centre(q) - first))))
    expected = (first + second) / 2 if between else 2 * first - second
    reach = (0.6 if between else 1.0) * box[2]
    return bool(np.hypot(*(centre - expected)) < reach)


def _same_place(a, b) -> bool:
    """Seen again at the next (or previous) detection where it was: a subject that
    jumped and stayed, not a one-off hit."""
    return bool(np.hypot(*(_centre(a) - _centre(b))) < 0.5 * max(a[2], b[2])
                and max(a[2], b[2]) < 1.3 * min(a[2], b[2]))


def _centre(box) -> np.ndarray:
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])


def _main_source(found: list[Subject], modes: tuple[str, ...]) -> str:
    """The preferred kind found in at least MAIN_SHARE of detections, else the commonest."""
    if not found:
        return "none"
    counts = {mode: sum(s.source == mode for s in found) for mode in modes}
    for mode in modes:
        if counts[mode] >= MAIN_SHARE * len(found):
            return mode
    return max(modes, key=lambda mode: counts[mode])


def _fill_between(grays, small: np.ndarray, anchors: list[int]) -> int:
    """Track from each anchor towards the next (and past the ends); returns frames filled."""
    if not anchors:
        return 0
    filled = 0
    bounds = [None, *anchors, None]
    for before, anchor, after in zip(bounds, bounds[1:], bounds[2:]):
        stop = after if after is not None else len(grays)
        path = _follow(grays, anchor, small[anchor], stop, +1)
        if after is not None and after in path:  # pull the stretch onto the next detection
            drift = small[after] - path.pop(after)
            for k in path:
                path[k] = path[k] + drift * (k - anchor) / (after - anchor)
        elif after is not None:  # lost on the way (the subject jumped): follow it back from there
            path.update(_follow(grays, after, small[after], anchor, -1))
        if before is None:  # the shot's head, before its first detection: track backwards
            path.update(_follow(grays, anchor, small[anchor], -1, -1))
        for k, box in path.items():
            if k != after and np.isnan(small[k]).all():
                small[k] = box
                filled += 1
    return filled


def _follow(grays, start: int, box: np.ndarray, stop: int, step: int) -> dict[int, np.ndarray]:
    """Boxes found by matching ``start``'s patch in frames start+step .. stop (inclusive when
    ``stop`` is a frame), until the match is lost."""
    import cv2

    x, y, w, h = (int(round(v)) for v in box)
    first = grays[start]
    x, y = max(0, x), max(0, y)
    w, h = min(w, first.shape[1] - x), min(h, first.shape[0] - y)
    if w < 4 or h < 4:
        return {}
    patch = first[y:y + h, x:x + w]
    out: dict[int, np.ndarray] = {}
    last = min(stop, len(grays) - 1) if step > 0 else max(stop, -1) + 1
    for k in range(start + step, last + step, step):
        frame = grays[k]
        mx, my = int(SEARCH * w), int(SEARCH * h)
        x0, y0 = max(0, x - mx), max(0, y - my)
        window = frame[y0:min(frame.shape[0], y + h + my), x0:min(frame.shape[1], x + w + mx)]
        if window.shape[0] < h or window.shape[1] < w:
            break
        scores = cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED)
        _, best, _, (dx, dy) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < MATCH_MIN:
            break
        x, y = x0 + dx, y0 + dy
        out[k] = np.array([x, y, w, h], dtype=np.float64)
    return out
