"""The four REAPER actions: separate, generate into the time selection, continue, master.

Each action reads the selection, asks for what it needs, starts its jobs through
:class:`hosts.reaper.jobs.Runner` and returns at once; when the jobs have ended,
its ``_place_*`` function puts the results into the project inside one undo block.
Originals are never changed beyond what the action says (separate mutes the item,
master adds a take): the results are new files in the project's media folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from dataclasses import dataclass

from .jobs import SUCCEEDED, UNAVAILABLE, Job, Runner

TITLE = "Studio Bridge"
OUT_SUBFOLDER = "studio-bridge"
# What a stem/mastered take keeps of the original so it plays the same part of the
# same-length file at the same place, speed and level.
ITEM_KEYS = ("D_POSITION", "D_LENGTH", "D_SNAPOFFSET", "B_LOOPSRC", "D_FADEINLEN", "D_FADEOUTLEN", "D_VOL")
TAKE_KEYS = ("D_STARTOFFS", "D_PLAYRATE", "B_PPITCH", "D_PITCH", "D_VOL", "D_PAN", "I_CHANMODE")
UNAVAILABLE_HELP = ("Start it with `studio-bridge serve` (or its service), then run the action again. "
                    "The adapter uses $STUDIO_BRIDGE_ADDR, else the default socket.")


@dataclass
class Clip:
    """A selected audio item's active take and what it plays."""

    item: str
    take: str
    track: str
    name: str
    path: str
    item_values: dict
    take_values: dict

    @property
    def end(self) -> float:
        return self.item_values["D_POSITION"] + self.item_values["D_LENGTH"]


# -- selection ----------------------------------------------------------------------------
def audio_clips(api) -> tuple[list[Clip], list[str]]:
    """The selected items that play an audio file, and a reason for each one skipped."""
    clips, skipped = [], []
    for index, item in enumerate(api.selected_items(), 1):
        take = api.active_take(item)
        if take is None:
            skipped.append(f"item {index}: empty item (no take)")
            continue
        name = api.take_name(take) or f"item {index}"
        if api.take_is_midi(take):
            skipped.append(f"'{name}': MIDI item (only audio items can be sent)")
            continue
        source = api.take_source(take)
        path = api.source_file(source) if source else ""
        kind = api.source_type(source) if source else ""
        if not path or kind.upper() in ("MIDI", "EMPTY", "SECTION", "VIDEOEFFECT", "CLICK"):
            why = "reversed or section source: glue it first" if kind.upper() == "SECTION" else "no audio file"
            skipped.append(f"'{name}': {why}")
            continue
        if not os.path.isfile(path):
            skipped.append(f"'{name}': its file is missing ({path})")
            continue
        clips.append(Clip(item, take, api.item_track(item), name, path,
                          {k: api.item(item, k) for k in ITEM_KEYS},
                          {k: api.take(take, k) for k in TAKE_KEYS}))
    return clips, skipped


def _no_clips(api, skipped: list[str], verb: str) -> None:
    text = f"Select one or more audio items to {verb}."
    if skipped:
        text += "\n\nSkipped:\n" + "\n".join(skipped)
    api.message(text, TITLE)


def _out_dir(api) -> str:
    return os.path.join(api.media_folder(), OUT_SUBFOLDER)


def _take_status(api, clip: Clip):
    def show(text):
        if api.alive(clip.take, "MediaItem_Take*"):
            api.set_take_name(clip.take, clip.name if text is None else f"{clip.name} [{text}]")
    return show


def _console_status(api, label: str):
    last = {"line": ""}

    def show(text):
        if text is None:
            return
        words = text.split()
        if len(words) > 1 and words[1].endswith("%"):  # print each tenth, not every event
            words[1] = f"{int(float(words[1][:-1]) // 10 * 10)}%"
        line = f"{TITLE}: {label}: {' '.join(words[:2])}"
        if line != last["line"]:
            last["line"] = line
            api.console(line)
    return show


# -- separate -----------------------------------------------------------------------------
def separate(api, runner_options: dict | None = None) -> Runner | None:
    """Separate selected items: stems on child tracks in a folder under each item's track."""
    clips, skipped = audio_clips(api)
    if not clips:
        _no_clips(api, skipped, "separate")
        return None
    answers = api.ask(f"{TITLE}: separate", [
        ("Stems (empty = all)", api.ext_state("separate_stems")),
        ("Two stems (e.g. vocals)", api.ext_state("separate_two_stems")),
        ("Model (empty = default)", api.ext_state("separate_model"))])
    if answers is None:
        return None
    stems, two_stems, model = (a.strip() for a in answers)
    for key, value in (("separate_stems", stems), ("separate_two_stems", two_stems), ("separate_model", model)):
        api.set_ext_state(key, value)
    params = {k: v for k, v in (("stems", stems), ("two_stems", two_stems)) if v}
    out_dir = _out_dir(api)
    jobs = [Job(clip.name, {"engine": "separate", "inputs": {"audio": clip.path}, "params": params,
                            "model": model, "out_dir": out_dir}, _take_status(api, clip), clip)
            for clip in clips]
    return _run(api, jobs, lambda done: _place_stems(api, done, skipped), runner_options)


def _place_stems(api, jobs: list[Job], skipped: list[str]) -> None:
    by_track: OrderedDict[str, list[Job]] = OrderedDict()
    gone = []
    for job in jobs:
        if job.state != SUCCEEDED:
            continue
        clip = job.context
        if not (api.alive(clip.item, "MediaItem*") and api.alive(clip.track, "MediaTrack*")):
            gone.append(f"'{clip.name}': the item was deleted while it was separated")
            continue
        by_track.setdefault(clip.track, []).append(job)
    if by_track:
        api.undo_begin()
        try:
            for track, group in by_track.items():
                stems = list(OrderedDict.fromkeys(o["kind"] for job in group for o in job.outputs))
                name = group[0].context.name if len(group) == 1 else api.track_name(track)
                _folder, stem_tracks = insert_folder(api, track, f"{name} stems", stems)
                for job in group:
                    clip = _as_now(api, job.context)  # moved or slipped while it ran: follow it
                    for output in job.outputs:
                        _add_clip_item(api, stem_tracks[output["kind"]], clip, output["path"],
                                       f"{clip.name} {output['kind']}")
                    api.set_item(clip.item, "B_MUTE", 1)
        finally:
            api.undo_end(f"{TITLE}: separate {sum(len(g) for g in by_track.values())} item(s) into stems")
        api.refresh()
    _summary(api, "separate", jobs, skipped + gone)


def insert_folder(api, track, name: str, children: list[str]) -> tuple[str, dict[str, str]]:
    """A folder track right under ``track`` holding one child per name; the folder
    structure around ``track`` stays as it was (the new folder is ``track``'s sibling,
    or its first child when ``track`` is itself a folder)."""
    index = api.track_index(track) + 1
    depth = int(api.track(track, "I_FOLDERDEPTH"))
    folder = api.insert_track(index)
    api.set_track_name(folder, name)
    tracks = {}
    for offset, child in enumerate(children, 1):
        tracks[child] = api.insert_track(index + offset)
        api.set_track_name(tracks[child], child)
    if depth < 0:  # ``track`` closed folders: the new last track closes them now
        api.set_track(track, "I_FOLDERDEPTH", 0)
    api.set_track(folder, "I_FOLDERDEPTH", 1)
    for child in tracks.values():
        api.set_track(child, "I_FOLDERDEPTH", 0)
    last = tracks[children[-1]] if children else folder
    api.set_track(last, "I_FOLDERDEPTH", (-1 if children else 0) + min(depth, 0))
    return folder, tracks


def _add_clip_item(api, track, clip: Clip, path: str, name: str) -> str:
    """An item on ``track`` playing ``path`` exactly where and as ``clip`` plays its file."""
    item = api.add_item(track)
    take = api.add_take(item)
    api.set_take_file(take, path)
    for key, value in clip.item_values.items():
        api.set_item(item, key, value)
    for key, value in clip.take_values.items():
        api.set_take(take, key, value)
    api.set_take_name(take, name)
    return item


# -- master -------------------------------------------------------------------------------
def master(api, runner_options: dict | None = None) -> Runner | None:
    """Master selected items: the result becomes a new active take; the original take stays."""
    clips, skipped = audio_clips(api)
    if not clips:
        _no_clips(api, skipped, "master")
        return None
    answers = api.ask(f"{TITLE}: master", [
        ("Preset (streaming/apple/ebu-r128/atsc-a85)", api.ext_state("master_preset", "streaming"))])
    if answers is None:
        return None
    preset = answers[0].strip() or "streaming"
    api.set_ext_state("master_preset", preset)
    out_dir = _out_dir(api)
    jobs = [Job(clip.name, {"engine": "master", "inputs": {"audio": clip.path}, "params": {"preset": preset},
                            "model": "", "out_dir": out_dir, "trim": _heard(clip, "audio")},
                _take_status(api, clip), clip)
            for clip in clips]
    return _run(api, jobs, lambda done: _place_masters(api, done, skipped), runner_options)


def _place_masters(api, jobs: list[Job], skipped: list[str]) -> None:
    ready = [j for j in jobs if j.state == SUCCEEDED and api.alive(j.context.item, "MediaItem*")]
    gone = [f"'{j.context.name}': the item was deleted while it was mastered"
            for j in jobs if j.state == SUCCEEDED and j not in ready]
    if ready:
        api.undo_begin()
        try:
            for job in ready:
                clip = job.context
                path = next((o["path"] for o in job.outputs if o["kind"] == "mastered"), job.outputs[0]["path"])
                take = api.add_take(clip.item)
                api.set_take_file(take, path)
                # The file is the part the item plays, mastered: it starts at 0, at unity gain
                # (the take's old volume would push it off the loudness target).
                for key, value in clip.take_values.items():
                    api.set_take(take, key, {"D_STARTOFFS": 0.0, "D_VOL": 1.0}.get(key, value))
                api.set_take_name(take, f"{clip.name} (mastered)")
                api.set_active_take(take)
        finally:
            api.undo_end(f"{TITLE}: master {len(ready)} item(s)")
        api.refresh()
    _summary(api, "master", jobs, skipped + gone)


# -- generate -----------------------------------------------------------------------------
@dataclass
class Grid:
    """The tempo map at a point: what the generate engine's tempo lock needs."""

    bpm: float  # beats of the time signature's denominator per minute (quarter BPM x denom / 4)
    beats_per_bar: int
    numerator: int
    denominator: int
    quarter_bpm: float

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm


def grid_at(api, seconds: float) -> Grid:
    num, denom, qbpm = api.time_signature_at(seconds)
    return Grid(qbpm * denom / 4.0, num, num, denom, qbpm)


def whole_bars(api, start: float, end: float) -> tuple[Grid, int] | str:
    """(grid, bars) for a selection of whole bars at one tempo, else why not."""
    grid = grid_at(api, start)
    inner = grid_at(api, max(start, end - 1e-6))
    sig = f"{grid.numerator}/{grid.denominator} at {grid.quarter_bpm:g} BPM"
    if (inner.numerator, inner.denominator) != (grid.numerator, grid.denominator) \
            or abs(inner.quarter_bpm - grid.quarter_bpm) > 1e-6:
        return (f"The tempo or time signature changes inside the time selection ({sig} at its start); "
                "select a part with one tempo.")
    bars = (end - start) / grid.bar_seconds
    nearest = max(1, round(bars))
    if abs(bars - nearest) * grid.bar_seconds > 5e-4:
        near_end = start + nearest * grid.bar_seconds
        return (f"The time selection is {bars:.2f} bars of {sig} ({end - start:.3f} s); it must be whole bars. "
                f"The nearest is {nearest} bar{'s' if nearest != 1 else ''} "
                f"({nearest * grid.bar_seconds:.3f} s, from {start:.3f} s to {near_end:.3f} s).")
    return grid, nearest


def generate(api, runner_options: dict | None = None) -> Runner | None:
    """Generate into the time selection: whole bars at the project's tempo, on a new track."""
    start, end = api.time_selection()
    if end <= start:
        api.message("Make a time selection of whole bars to generate into.", TITLE)
        return None
    fit = whole_bars(api, start, end)
    if isinstance(fit, str):
        api.message(fit, TITLE)
        return None
    grid, bars = fit
    answers = api.ask(f"{TITLE}: generate {bars} bar(s)", [
        ("Prompt", api.ext_state("generate_prompt")),
        ("Model (empty = default)", api.ext_state("generate_model"))])
    if answers is None:
        return None
    prompt, model = (a.strip() for a in answers)
    if not prompt:
        api.message("The prompt is empty: say what to generate, e.g. 'warm rhodes chords'.", TITLE)
        return None
    api.set_ext_state("generate_prompt", prompt)
    api.set_ext_state("generate_model", model)
    params = {"prompt": prompt, "bpm": round(grid.bpm, 6), "bars": bars, "beats_per_bar": grid.beats_per_bar}
    job = Job(prompt, {"engine": "generate", "inputs": {}, "params": params, "model": model,
                       "out_dir": _out_dir(api)}, _console_status(api, f"generate '{prompt}'"),
              (start, end, api.selected_track()))
    return _run(api, [job], lambda done: _place_generated(api, done), runner_options)


def _place_generated(api, jobs: list[Job]) -> None:
    job = jobs[0]
    if job.state == SUCCEEDED:
        start, end, anchor = job.context
        api.undo_begin()
        try:
            if anchor is not None and api.alive(anchor, "MediaTrack*"):
                track = insert_after(api, anchor)
            else:
                track = api.insert_track(api.track_count())
            api.set_track_name(track, f"Generated: {job.label}")
            item = api.add_item(track)
            take = api.add_take(item)
            api.set_take_file(take, job.outputs[0]["path"])
            api.set_item(item, "D_POSITION", start)
            api.set_item(item, "D_LENGTH", end - start)
            api.set_take_name(take, job.label)
        finally:
            api.undo_end(f"{TITLE}: generate into time selection")
        api.refresh()
    _summary(api, "generate", jobs, [])


def insert_after(api, track) -> str:
    """A new track right under ``track``, at its level (or as its first child when it is a folder)."""
    depth = int(api.track(track, "I_FOLDERDEPTH"))
    new = api.insert_track(api.track_index(track) + 1)
    if depth < 0:
        api.set_track(track, "I_FOLDERDEPTH", 0)
        api.set_track(new, "I_FOLDERDEPTH", depth)
    return new


# -- continue -----------------------------------------------------------------------------
def continue_item(api, runner_options: dict | None = None) -> Runner | None:
    """Continue the selected item: MusicGen carries on from its file; the result goes right after it."""
    clips, skipped = audio_clips(api)
    if not clips:
        _no_clips(api, skipped, "continue")
        return None
    if len(clips) > 1:
        api.message("Select one audio item to continue.", TITLE)
        return None
    clip = clips[0]
    answers = api.ask(f"{TITLE}: continue '{clip.name}'", [
        ("Prompt", api.ext_state("generate_prompt")), ("Bars", api.ext_state("continue_bars", "4")),
        ("Model (empty = default)", api.ext_state("generate_model"))])
    if answers is None:
        return None
    prompt, bars_text, model = (a.strip() for a in answers)
    try:
        bars = int(bars_text)
        assert bars > 0
    except (ValueError, AssertionError):
        api.message(f"Bars must be a whole number above 0, not '{bars_text}'.", TITLE)
        return None
    if not prompt:
        api.message("The prompt is empty: say what should follow, e.g. 'the same groove, busier'.", TITLE)
        return None
    for key, value in (("generate_prompt", prompt), ("continue_bars", str(bars)), ("generate_model", model)):
        api.set_ext_state(key, value)
    if clip.take_values.get("D_PLAYRATE", 1.0) != 1.0:
        api.message(f"'{clip.name}' plays at rate {clip.take_values['D_PLAYRATE']:g}: the continuation "
                    "would not match its speed. Set the take's playrate to 1.0 (or glue the item) and "
                    "run Continue again.", TITLE)
        return None
    grid = grid_at(api, clip.end)
    params = {"prompt": prompt, "bpm": round(grid.bpm, 6), "bars": bars, "beats_per_bar": grid.beats_per_bar}
    job = Job(clip.name, {"engine": "generate", "inputs": {"continue": clip.path}, "params": params,
                          "model": model, "out_dir": _out_dir(api), "trim": _heard(clip, "continue")},
              _take_status(api, clip), clip)
    return _run(api, [job], lambda done: _place_continuation(api, done, skipped), runner_options)


def _place_continuation(api, jobs: list[Job], skipped: list[str]) -> None:
    job, clip = jobs[0], _as_now(api, jobs[0].context)
    gone = []
    if job.state == SUCCEEDED and not api.alive(clip.track, "MediaTrack*"):
        gone.append(f"'{clip.name}': its track was deleted while the job ran")
    elif job.state == SUCCEEDED:
        api.undo_begin()
        try:
            item = api.add_item(clip.track)
            take = api.add_take(item)
            api.set_take_file(take, job.outputs[0]["path"])
            api.set_item(item, "D_POSITION", clip.end)
            api.set_item(item, "D_LENGTH", api.source_length(api.take_source(take)))
            api.set_take_name(take, f"{clip.name} (continued)")
        finally:
            api.undo_end(f"{TITLE}: continue '{clip.name}'")
        api.refresh()
    _summary(api, "continue", jobs, skipped + gone)


# -- shared -------------------------------------------------------------------------------
def _as_now(api, clip: Clip) -> Clip:
    """``clip`` with its item's and take's values as they are now (the user may have moved,
    trimmed or slipped it while the job ran); as it was if the item or take is gone."""
    if not (api.alive(clip.item, "MediaItem*") and api.alive(clip.take, "MediaItem_Take*")):
        return clip
    return dataclasses.replace(clip, item_values={k: api.item(clip.item, k) for k in ITEM_KEYS},
                               take_values={k: api.take(clip.take, k) for k in TAKE_KEYS})


def _heard(clip: Clip, input_name: str) -> dict:
    """The span of the source the item plays (the worker cuts it): start offset, length x rate."""
    rate = clip.take_values.get("D_PLAYRATE", 1.0)
    return {"input": input_name, "start": clip.take_values.get("D_STARTOFFS", 0.0),
            "duration": clip.item_values["D_LENGTH"] * rate}



def _run(api, jobs: list[Job], finish, runner_options: dict | None) -> Runner:
    runner = Runner(api, jobs, finish, **(runner_options or {}))
    api.console(f"{TITLE}: {jobs[0].request['engine']}: {len(jobs)} job(s) started; "
                "REAPER stays usable while they run.")
    runner.start()
    return runner


def _summary(api, verb: str, jobs: list[Job], notes: list[str]) -> None:
    """Say what was done; a dialog when nothing was, or when the daemon is not there."""
    done = [j for j in jobs if j.state == SUCCEEDED]
    lines = [f"'{j.label}': {j.problem}" for j in jobs if j.state != SUCCEEDED] + notes
    if any(j.state == UNAVAILABLE for j in jobs):
        message = next(j.problem for j in jobs if j.state == UNAVAILABLE)
        changed = f"{len(done)} of {len(jobs)} finished and were placed; the rest were not" if done \
            else "nothing was changed"
        api.message(f"The Studio Bridge daemon is not running ({changed}).\n\n{message}\n\n"
                    f"{UNAVAILABLE_HELP}", TITLE)
        return
    head = f"{TITLE}: {verb}: {len(done)} of {len(jobs)} done"
    if done and not lines:
        api.console(head + ".")
    elif done:
        api.console(head + "; not done:\n  " + "\n  ".join(lines))
    else:
        api.message(f"{verb.capitalize()}: nothing was changed.\n\n" + "\n".join(lines), TITLE)
