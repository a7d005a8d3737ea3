"""The otio host's three actions: reframe video clips, separate or master audio clips.

Each reads IN, sends every selected clip's media to the daemon through
``bridge.client``, points the timeline at the results and writes OUT (plus a
lossless ``.otio`` sidecar). A clip that cannot be processed gets a row saying
why and the rest go on; only a run that processes nothing is an error.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from .formats import DEFAULT_CANVAS, canvas_for, parse_aspect, read_canvas
from .probe import probe
from .session import ClipProblem, Options, Run, attach, media_played, note_on, output_of, source_range
from .timeline import Candidate, media_origin, render_window

__all__ = ["Options", "reframe", "separate", "master"]


# -- reframe --------------------------------------------------------------------------
def reframe(client, opts: Options, aspect: str = "9:16", follow: str = "auto", progress=None) -> dict:
    """Reframe every selected video clip; the sequence gets the new canvas size."""
    parse_aspect(aspect)  # a typo fails before any job runs

    def apply(run: Run):
        sizes = []

        def one(cand: Candidate, row: dict) -> None:
            sizes.append(_reframe_clip(run, cand, row, aspect, follow))

        run.each(run.candidates("Video"), one)
        source = read_canvas(run.input, run.doc.fmt, run.timeline) or next((s for s in sizes if s), DEFAULT_CANVAS)
        return canvas_for(source, aspect)

    return Run(client, opts, "reframe", progress).execute(apply)


def _reframe_clip(run: Run, cand: Candidate, row: dict, aspect: str, follow: str):
    """One clip: render its used range plus handles; returns its media's frame size."""
    ref, path = run.media_for(cand, row)
    clip, source = cand.clip, source_range(cand.clip)
    info = probe(path)
    fps, frames, warnings = _frame_rate(info, source)
    origin = media_origin(run.doc.fmt, ref, fps, info.timecode if info else "", source.start_time)
    window = render_window(media_played(clip), origin, frames, run.opts.handles)
    # Each clip gets a render of its own range, even where clips share media and
    # their ranges overlap; an identical request is sent once (Run.job) and the
    # daemon's cache answers repeats across runs.
    params = {"aspect": aspect, "track": follow, "start": round(float(window.first / fps), 6),
              "duration": round(float(window.count / fps), 6)}
    job = run.job("reframe", {"video": str(path)}, params, row, expect=("video", "keyframes"))
    video, keyframes = output_of(job, "video"), output_of(job, "keyframes")
    report = job.get("report") or {}
    attach(clip, _rendered_reference(video, report, params, origin))
    shots = _shots(keyframes)
    warnings += list(window.warnings) + list(report.get("warnings") or [])
    details = {"engine": "reframe", "params": params, "job_id": job["job_id"], "render": video,
               "keyframes": keyframes, "timecode": report.get("timecode"), "shots": shots, "source": str(path),
               "warnings": warnings}
    note_on(clip, _reframe_marker(aspect, shots, job["job_id"]), details, source.start_time)
    row.update(render=video, keyframes=keyframes, timecode=report.get("timecode"),
               shots=[f"{s.get('subject')} {s.get('mode')}" for s in shots],
               range={"start": params["start"], "duration": params["duration"], "frames": report.get("frames")})
    if warnings:
        row["warnings"] = warnings
    return (info.width, info.height) if info and info.has_video else None


def _rendered_reference(video: str, report: dict, params: dict, origin):
    """The render as media: it starts where its range starts in the source's media
    time and lasts as long as it plays (seconds stay true for variable frame rates)."""
    from opentimelineio import opentime, schema

    rate = origin.rate
    first = opentime.RationalTime(round(float(report.get("start", params["start"])) * rate), rate)
    seconds = float(report.get("duration") or params["duration"])
    rendered = schema.ExternalReference(target_url=Path(video).as_uri(), available_range=opentime.TimeRange(
        origin + first, opentime.RationalTime(round(seconds * rate), rate)))
    rendered.name = Path(video).name
    return rendered


def _frame_rate(info, source) -> tuple[Fraction, int, list[str]]:
    """The rate to count the media's frames at, its frames at that rate (0 = unknown), warnings.

    The file's own rate when it is constant; for variable-frame-rate media
    (average and nominal rates differ) the rate the timeline conformed the
    clip to, since that is how the editor counts it.
    """
    clip_rate = Fraction(source.start_time.rate).limit_denominator(1001)
    if info is None or not info.fps:
        return clip_rate, 0, []
    if info.nominal_fps and abs(info.fps / info.nominal_fps - 1) > 0.001:
        note = (f"variable frame rate (average {float(info.fps):.3f}, nominal {float(info.nominal_fps):.3f} "
                f"fps): counted at the timeline's {float(clip_rate):g} fps; conform the media to a "
                "constant rate for exact cuts")
        return clip_rate, int(info.duration * clip_rate), [note]
    return info.fps, info.frames, []


def _shots(keyframes: str) -> list[dict]:
    """Per-shot start/end/mode/subject from the keyframes file (empty if unreadable)."""
    try:
        data = json.loads(Path(keyframes).read_text())
    except (OSError, ValueError):
        return []
    return [{k: shot.get(k) for k in ("start", "end", "mode", "subject")} for shot in data.get("shots", [])]


def _reframe_marker(aspect: str, shots: list[dict], job_id: str) -> str:
    modes = []
    for shot in shots:
        mode = f"{shot.get('subject')} {shot.get('mode')}"
        if not modes or modes[-1] != mode:
            modes.append(mode)
    summary = ", ".join(modes[:4]) + (", ..." if len(modes) > 4 else "")
    return f"studio-bridge reframe {aspect} job {job_id}: {summary or 'no shots'}"


# -- audio: separate and master -------------------------------------------------------
def _audio_range(run: Run, ref, path: Path, source):
    """The result file's media range: results keep the source's length and rate, so
    the original's available range (or the file's length from its media origin)."""
    from opentimelineio import opentime

    if ref.available_range is not None:
        return ref.available_range
    info = probe(path)
    rate = source.start_time.rate
    origin = media_origin(run.doc.fmt, ref, rate, info.timecode if info else "", source.start_time)
    seconds = info.duration if info else 0.0
    return opentime.TimeRange(origin, opentime.RationalTime(round(seconds * rate), rate))


def _check_audio_covers(run: Run, ref, path: Path, clip) -> None:
    """Refuse a clip that plays past either end of its file: its result (as long as the
    file) would leave it pointing at nothing.

    Raises:
        ClipProblem: the clip's media time lies outside the file.
    """
    info = probe(path)
    if info is None or not info.duration:
        return  # the daemon says what is wrong with the file
    try:
        played = media_played(clip)
    except ClipProblem:  # reverse or variable speed: a result of the whole file still serves it
        played = source_range(clip)
    rate = played.start_time.rate
    origin = media_origin(run.doc.fmt, ref, rate, info.timecode, played.start_time)
    first = (played.start_time - origin).to_seconds()
    end = first + played.duration.to_seconds()
    if first < -0.5 / rate or end > info.duration + 1.0 / rate:
        raise ClipProblem("failed", f"the clip plays {first:.3f}..{end:.3f} s of its media but '{path.name}' "
                                    f"has 0..{info.duration:.3f} s: the timeline's timecode or length and the "
                                    "file disagree (is it the file the editor used?)")


def separate(client, opts: Options, stems: str | None = None, two_stems: str | None = None,
             model: str = "", progress=None) -> dict:
    """Split every selected audio clip; each stem lands on a new audio track under its clip."""
    params = {k: v for k, v in (("stems", stems), ("two_stems", two_stems)) if v}

    def apply(run: Run) -> None:
        placed: dict[int, tuple] = {}  # source track id -> (track, label, {stem: [(range, clip)]})
        run.each(run.candidates("Audio"), lambda cand, row: _separate_clip(run, cand, row, params, model, placed))
        _add_stem_tracks(run.timeline, placed)

    return Run(client, opts, "separate", progress).execute(apply)


def _expected_stems(params: dict) -> tuple[str, ...]:
    """The stems a separation makes, for a dry run: as asked, else the four of htdemucs."""
    if params.get("two_stems"):
        return params["two_stems"], f"no_{params['two_stems']}"
    if params.get("stems"):
        return tuple(s.strip() for s in params["stems"].split(",") if s.strip())
    return "drums", "bass", "other", "vocals"


def _separate_clip(run: Run, cand: Candidate, row: dict, params: dict, model: str, placed: dict) -> None:
    """One clip: its stems become clips at its timeline place (tracks are added after all clips)."""
    from opentimelineio import schema

    ref, path = run.media_for(cand, row)
    clip, source = cand.clip, source_range(cand.clip)
    _check_audio_covers(run, ref, path, clip)
    job = run.job("separate", {"audio": str(path)}, params, row, model, expect=_expected_stems(params))
    available = _audio_range(run, ref, path, source)
    at = cand.clip.transformed_time_range(cand.clip.trimmed_range(), cand.track)
    row["stems"] = {}
    for output in job["outputs"]:
        stem = schema.Clip(name=f"{clip.name} {output['kind']}", source_range=source,
                           media_reference=schema.ExternalReference(target_url=Path(output["path"]).as_uri(),
                                                                    available_range=available),
                           effects=[effect.clone() for effect in clip.effects])  # speed, freeze: as its clip
        details = {"engine": "separate", "model": job.get("model", model), "params": params,
                   "job_id": job["job_id"], "stem": output["kind"], "render": output["path"],
                   "source": str(path)}
        note_on(stem, f"studio-bridge {output['kind']} of {clip.name} job {job['job_id']}", details,
                source.start_time)
        _, _, by_stem = placed.setdefault(id(cand.track), (cand.track, cand.label, {}))
        by_stem.setdefault(output["kind"], []).append((at, stem))
        row["stems"][output["kind"]] = output["path"]


def _add_stem_tracks(timeline, placed: dict) -> None:
    """One new audio track per source track and stem, right under the source track,
    each stem at its clip's timeline position."""
    for track, label, stems in placed.values():
        index = next(i for i, t in enumerate(timeline.tracks) if t is track)
        for offset, (kind, items) in enumerate(stems.items(), start=1):
            timeline.tracks.insert(index + offset, _stem_track(f"{label} {kind}", items))


def _stem_track(name: str, items: list):
    """A track holding each (timeline range, clip) at its range, gaps between."""
    from opentimelineio import opentime, schema

    track = schema.Track(name=name, kind=schema.TrackKind.Audio)
    cursor = opentime.RationalTime(0, items[0][0].start_time.rate)
    for at, stem in sorted(items, key=lambda item: item[0].start_time.to_seconds()):
        if at.start_time < cursor:
            continue  # overlaps the previous one (cannot happen on one source track): keep the first
        if at.start_time > cursor:
            track.append(schema.Gap(duration=at.start_time - cursor))
        track.append(stem)
        cursor = at.end_time_exclusive()
    return track


def master(client, opts: Options, preset: str | None = None, lufs: float | None = None,
           ceiling: float | None = None, progress=None) -> dict:
    """Master every selected audio clip; each clip plays its mastered file (original kept)."""
    params = {k: v for k, v in (("preset", preset), ("lufs", lufs), ("ceiling", ceiling)) if v is not None}

    def apply(run: Run) -> None:
        run.each(run.candidates("Audio"), lambda cand, row: _master_clip(run, cand, row, params))

    return Run(client, opts, "master", progress).execute(apply)


def _master_clip(run: Run, cand: Candidate, row: dict, params: dict) -> None:
    """One clip: it plays its mastered file, the original kept beside it."""
    from opentimelineio import schema

    ref, path = run.media_for(cand, row)
    clip, source = cand.clip, source_range(cand.clip)
    _check_audio_covers(run, ref, path, clip)
    job = run.job("master", {"audio": str(path)}, params, row, expect=("mastered",))
    mastered = output_of(job, "mastered")
    new = schema.ExternalReference(target_url=Path(mastered).as_uri(),
                                   available_range=_audio_range(run, ref, path, source))
    new.name = Path(mastered).name
    attach(clip, new)
    after = (job.get("report") or {}).get("after", {})
    details = {"engine": "master", "params": params, "job_id": job["job_id"], "render": mastered,
               "source": str(path), "after": after}
    lufs = after.get("integrated_lufs")
    level = f" {lufs:.1f} LUFS" if isinstance(lufs, (int, float)) else ""
    note_on(clip, f"studio-bridge master{level} job {job['job_id']}", details, source.start_time)
    row.update(render=mastered, report={"after": after})
