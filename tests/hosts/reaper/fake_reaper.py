"""An in-memory REAPER for the adapter's tests.

It holds tracks, items, takes, sources, a tempo map, a time selection, ext state
and the undo log, and exposes ``RPR_*`` functions with the Python binding's calling
convention. Every call is checked against ``hosts/reaper/api_table.py``: argument
count and types (object pointers must be live pointers of the right type, ints
must not be floats: ctypes refuses them) and the answer's shape (value, None, or a
tuple of the return value plus every argument, out ones filled in). Unknown
``*_Value`` keys raise instead of answering 0 as REAPER would, to catch typos.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from hosts.reaper.api_table import OBJECT_TYPES, SIGNATURES, returns_tuple

_POINTER = re.compile(r"^\((\w+\*)\)0x([0-9A-F]{16})$")
_ids = itertools.count(0x1000)


class ApiMisuse(AssertionError):
    """The adapter called REAPER in a way the real binding would not accept (or silently mis-handle)."""


def null(kind: str) -> str:
    return f"({kind})0x{0:016X}"


@dataclass(eq=False)
class Obj:
    kind = "void*"

    def __post_init__(self):
        self.ptr = f"({self.kind})0x{next(_ids):016X}"
        self.alive = True


@dataclass(eq=False)
class Project(Obj):
    path: str = ""
    kind = "ReaProject*"


@dataclass(eq=False)
class Source(Obj):
    path: str = ""
    type: str = "WAVE"
    length: float = 0.0
    rate: int = 0
    kind = "PCM_source*"


@dataclass(eq=False)
class Take(Obj):
    item: Item = None
    source: Source | None = None
    name: str = ""
    values: dict = field(default_factory=lambda: {"D_STARTOFFS": 0.0, "D_PLAYRATE": 1.0, "B_PPITCH": 0.0,
                                                  "D_PITCH": 0.0, "D_VOL": 1.0, "D_PAN": 0.0, "I_CHANMODE": 0.0})
    kind = "MediaItem_Take*"


@dataclass(eq=False)
class Item(Obj):
    track: Track = None
    takes: list = field(default_factory=list)
    active: Take | None = None
    selected: bool = False
    values: dict = field(default_factory=lambda: {"D_POSITION": 0.0, "D_LENGTH": 0.0, "B_MUTE": 0.0,
                                                  "D_SNAPOFFSET": 0.0, "B_LOOPSRC": 1.0, "D_FADEINLEN": 0.0,
                                                  "D_FADEOUTLEN": 0.0, "D_VOL": 1.0})
    kind = "MediaItem*"


@dataclass(eq=False)
class Track(Obj):
    name: str = ""
    depth: int = 0
    selected: bool = False
    items: list = field(default_factory=list)
    kind = "MediaTrack*"


class FakeReaper:
    """One project in memory; ``functions()`` gives the ``RPR_*`` namespace."""

    def __init__(self, media_folder: str | Path):
        self.media_folder = str(media_folder)
        self.tracks: list[Track] = []
        self.objects: dict[str, Obj] = {}
        self.time_selection = (0.0, 0.0)
        self.tempo = [(0.0, 120.0, 4, 4)]  # (time, quarter-note BPM, numerator, denominator)
        self.ext: dict[tuple[str, str], str] = {}
        self.answers: list = []  # what GetUserInputs answers next: a list of values, or None (cancel)
        self.console: list[str] = []
        self.messages: list[str] = []
        self.undo: list[tuple] = []  # ("begin",) / ("end", description)
        self.undo_depth = 0
        self.changes_outside_undo: list[tuple] = []
        self.deferred: list[str] = []
        self.calls: list[tuple] = []
        # the modelled project, and another tab the user may switch to (it holds nothing)
        self.project = self._keep(Project(path=str(Path(media_folder) / "song.RPP")))
        self.other_project = self._keep(Project(path=""))
        self.active_project = self.project

    # -- building a project -------------------------------------------------------------
    def _keep(self, obj: Obj) -> Obj:
        self.objects[obj.ptr] = obj
        return obj

    def add_track(self, name: str, depth: int = 0, selected: bool = False) -> Track:
        track = self._keep(Track(name=name, depth=depth, selected=selected))
        self.tracks.append(track)
        return track

    def add_item(self, track: Track, path: str | None, position: float, length: float, offset: float = 0.0,
                 rate: float = 1.0, selected: bool = True, midi: bool = False, name: str = "") -> Item:
        item = self._keep(Item(track=track, selected=selected))
        item.values.update(D_POSITION=position, D_LENGTH=length)
        track.items.append(item)
        if path is not None or midi:
            take = self._keep(Take(item=item, name=name or (Path(path).name if path else "MIDI")))
            take.source = self._source("" if midi else path, "MIDI" if midi else None)
            take.values.update(D_STARTOFFS=offset, D_PLAYRATE=rate)
            item.takes.append(take)
            item.active = take
        return item

    def _source(self, path: str, kind: str | None = None) -> Source:
        source = Source(path=path, type=kind or "WAVE")
        if path and Path(path).is_file():
            info = soundfile.info(path)
            source.length, source.rate = info.frames / info.samplerate, info.samplerate
        return self._keep(source)

    def delete_item(self, item: Item) -> None:
        item.track.items.remove(item)
        for obj in [item, *item.takes]:
            obj.alive = False

    # -- the test's view ----------------------------------------------------------------
    def parents(self) -> dict[str, str | None]:
        """Each track's folder parent by name, from the I_FOLDERDEPTH values."""
        stack, out = [], {}
        for track in self.tracks:
            out[track.name] = stack[-1].name if stack else None
            if track.depth > 0:
                stack.append(track)
            for _ in range(-track.depth if track.depth < 0 else 0):
                stack.pop()
        return out

    def track(self, name: str) -> Track:
        return next(t for t in self.tracks if t.name == name)

    def run_deferred(self, namespace: dict, timeout: float = 60.0) -> None:
        """REAPER's idle loop: run deferred code strings in the script's globals until none is left."""
        deadline = time.monotonic() + timeout
        while self.deferred:
            if time.monotonic() > deadline:
                raise AssertionError(f"still deferring after {timeout} s: the action never finished")
            code = self.deferred.pop(0)
            exec(code, namespace)  # noqa: S102 - what REAPER does with deferred code
            time.sleep(0.01)

    # -- the RPR_* namespace, checked -------------------------------------------------------
    def functions(self) -> dict:
        return {"RPR_" + name: self._checked(name) for name in SIGNATURES}

    def _checked(self, name: str):
        ret, types = SIGNATURES[name]
        impl = getattr(self, "_" + name)

        def call(*args):
            if len(args) != len(types):
                raise ApiMisuse(f"RPR_{name} takes {len(types)} arguments ({', '.join(types)}); got {len(args)}: {args}")
            for i, (kind, value) in enumerate(zip(types, args)):
                self._check_arg(name, i, kind, value)
            self.calls.append((name, args))
            out = impl(*args)
            if returns_tuple(name):
                value, outs = out
                full = list(args)
                for i, v in outs.items():
                    full[i] = v
                answer = tuple(([] if ret == "void" else [value]) + full)
            else:
                answer = out
            self._check_answer(name, answer)
            return answer
        return call

    def _check_arg(self, name, i, kind, value):
        where = f"RPR_{name} argument {i + 1} ({kind})"
        if kind == "ReaProject*" and value == 0 and type(value) is int:
            return
        if kind in OBJECT_TYPES:
            match = _POINTER.match(value) if isinstance(value, str) else None
            if not match:
                raise ApiMisuse(f"{where}: {value!r} is not a pointer string (the binding would pass NULL)")
            if kind != "void*" and match.group(1) != kind:
                raise ApiMisuse(f"{where}: got a {match.group(1)} (the binding would pass NULL)")
            obj = self.objects.get(value)
            if obj is None or not obj.alive:
                if name == "ValidatePtr2":
                    return
                raise ApiMisuse(f"{where}: {value} no longer exists (the binding would pass NULL)")
            return
        ok = {"int": lambda v: type(v) is int, "int*": lambda v: type(v) is int,
              "double": lambda v: type(v) in (int, float), "double*": lambda v: type(v) in (int, float),
              "bool": lambda v: type(v) in (bool, int), "bool*": lambda v: type(v) in (bool, int),
              "const char*": lambda v: isinstance(v, str), "buf": lambda v: isinstance(v, str)}[kind]
        if not ok(value):
            raise ApiMisuse(f"{where}: {value!r} has the wrong type for ctypes")

    def _check_answer(self, name, answer):
        ret, types = SIGNATURES[name]

        def ok(kind, v):
            if kind in OBJECT_TYPES:
                return isinstance(v, str) and bool(_POINTER.match(v)) and v.startswith(f"({kind})")
            return {"void": lambda: v is None, "int": lambda: type(v) is int, "bool": lambda: type(v) is int,
                    "double": lambda: type(v) is float, "const char*": lambda: isinstance(v, str),
                    "int*": lambda: type(v) is int, "bool*": lambda: type(v) is int,
                    "double*": lambda: type(v) is float, "buf": lambda: isinstance(v, str)}.get(kind, lambda: True)()

        if returns_tuple(name):
            expected = list(types) if ret == "void" else [ret, *types]
            if not isinstance(answer, tuple) or len(answer) != len(expected):
                raise ApiMisuse(f"fake RPR_{name} answered {answer!r}, not a {len(expected)}-tuple")
            bad = [i for i, (k, v) in enumerate(zip(expected, answer)) if (i == 0 and ret != "void" or
                                                                          k in ("int*", "bool*", "double*", "buf"))
                   and not ok(k, v)]
        else:
            bad = [] if ok(ret, answer) else [0]
        if bad:
            raise ApiMisuse(f"fake RPR_{name} answered {answer!r}: wrong type at {bad}")

    def _obj(self, ptr):
        return self.objects[ptr]

    def _changed(self, what):
        if self.undo_depth == 0:
            self.changes_outside_undo.append(what)

    # -- implementations (logical answers; _checked builds the binding's shape) ------------
    def _CountSelectedMediaItems(self, proj):
        return len(self._selected())

    def _selected(self):
        return [i for t in self.tracks for i in t.items if i.selected]

    def _GetSelectedMediaItem(self, proj, index):
        sel = self._selected()
        return sel[index].ptr if 0 <= index < len(sel) else null("MediaItem*")

    def _GetMediaItemInfo_Value(self, item, key):
        return float(self._obj(item).values[key])

    def _SetMediaItemInfo_Value(self, item, key, value):
        obj = self._obj(item)
        if key not in obj.values:
            raise ApiMisuse(f"unknown item key {key}")
        obj.values[key] = float(value)
        self._changed(("item", key))
        return 1

    def _GetMediaItem_Track(self, item):
        return self._obj(item).track.ptr

    def _AddMediaItemToTrack(self, track):
        tr = self._obj(track)
        item = self._keep(Item(track=tr))
        tr.items.append(item)
        self._changed(("add item",))
        return item.ptr

    def _CountTakes(self, item):
        return len(self._obj(item).takes)

    def _GetActiveTake(self, item):
        active = self._obj(item).active
        return active.ptr if active else null("MediaItem_Take*")

    def _SetActiveTake(self, take):
        obj = self._obj(take)
        obj.item.active = obj
        self._changed(("active take",))

    def _AddTakeToMediaItem(self, item):
        it = self._obj(item)
        take = self._keep(Take(item=it))
        it.takes.append(take)
        if it.active is None:
            it.active = take
        self._changed(("add take",))
        return take.ptr

    def _TakeIsMIDI(self, take):
        source = self._obj(take).source
        return int(bool(source and source.type == "MIDI"))

    def _GetMediaItemTakeInfo_Value(self, take, key):
        return float(self._obj(take).values[key])

    def _SetMediaItemTakeInfo_Value(self, take, key, value):
        obj = self._obj(take)
        if key not in obj.values:
            raise ApiMisuse(f"unknown take key {key}")
        obj.values[key] = float(value)
        self._changed(("take", key))
        return 1

    def _GetSetMediaItemTakeInfo_String(self, take, key, value, is_set):
        if key != "P_NAME":
            raise ApiMisuse(f"unmodelled take string {key}")
        obj = self._obj(take)
        if is_set:
            obj.name = value
        return 1, {2: obj.name}

    def _GetMediaItemTake_Source(self, take):
        source = self._obj(take).source
        return source.ptr if source else null("PCM_source*")

    def _SetMediaItemTake_Source(self, take, source):
        self._obj(take).source = self._obj(source)
        self._changed(("take source",))
        return 1

    def _PCM_Source_CreateFromFile(self, path):
        return self._source(path).ptr

    def _GetMediaSourceFileName(self, source, buf, size):
        return None, {1: self._obj(source).path[: size - 1]}

    def _GetMediaSourceType(self, source, buf, size):
        return None, {1: self._obj(source).type}

    def _GetMediaSourceLength(self, source, is_qn):
        return float(self._obj(source).length), {1: 0}

    def _GetMediaSourceSampleRate(self, source):
        return int(self._obj(source).rate)

    def _CountTracks(self, proj):
        return len(self.tracks)

    def _GetTrack(self, proj, index):
        return self.tracks[index].ptr if 0 <= index < len(self.tracks) else null("MediaTrack*")

    def _GetSelectedTrack(self, proj, index):
        sel = [t for t in self.tracks if t.selected]
        return sel[index].ptr if 0 <= index < len(sel) else null("MediaTrack*")

    def _InsertTrackAtIndex(self, index, defaults):
        track = self._keep(Track(name=""))
        self.tracks.insert(max(0, min(index, len(self.tracks))), track)
        self._changed(("insert track",))

    def _GetMediaTrackInfo_Value(self, track, key):
        obj = self._obj(track)
        if key == "IP_TRACKNUMBER":
            return float(self.tracks.index(obj) + 1)
        if key == "I_FOLDERDEPTH":
            return float(obj.depth)
        raise ApiMisuse(f"unmodelled track key {key}")

    def _SetMediaTrackInfo_Value(self, track, key, value):
        if key != "I_FOLDERDEPTH":
            raise ApiMisuse(f"unmodelled track key {key}")
        self._obj(track).depth = int(value)
        self._changed(("track", key))
        return 1

    def _GetSetMediaTrackInfo_String(self, track, key, value, is_set):
        if key != "P_NAME":
            raise ApiMisuse(f"unmodelled track string {key}")
        obj = self._obj(track)
        if is_set:
            obj.name = value
            self._changed(("track name",))
        return 1, {2: obj.name}

    def _GetSet_LoopTimeRange2(self, proj, is_set, is_loop, start, end, seek):
        if is_set:
            self.time_selection = (float(start), float(end))
        return None, {3: float(self.time_selection[0]), 4: float(self.time_selection[1])}

    def _TimeMap_GetTimeSigAtTime(self, proj, seconds, num, denom, tempo):
        marker = [m for m in self.tempo if m[0] <= seconds + 1e-12][-1]
        return None, {2: int(marker[2]), 3: int(marker[3]), 4: float(marker[1])}

    def _GetProjectPathEx(self, proj, buf, size):
        return None, {1: self.media_folder}

    def _GetExtState(self, section, key):
        return self.ext.get((section, key), "")

    def _SetExtState(self, section, key, value, persist):
        self.ext[(section, key)] = value

    def _GetUserInputs(self, title, count, captions, defaults, size):
        fields = captions.split(",")
        extras = [f for f in fields if re.match(r"^(extrawidth|separator)=", f)]
        names = [f for f in fields if f not in extras]
        if len(names) != count:
            raise ApiMisuse(f"GetUserInputs: {count} inputs but captions {names}")
        sep = next((e.split("=", 1)[1] for e in extras if e.startswith("separator=")), ",")
        if len(defaults.split(sep)) != count:
            raise ApiMisuse(f"GetUserInputs: defaults {defaults!r} do not split into {count} with {sep!r}")
        self.messages.append(f"[inputs] {title}")
        answer = self.answers.pop(0)
        if answer is None:
            return 0, {3: defaults}
        return 1, {3: sep.join(answer)}

    def _ShowMessageBox(self, text, title, kind):
        self.messages.append(text)
        return 1

    def _ShowConsoleMsg(self, text):
        self.console.append(text)

    def _Undo_BeginBlock2(self, proj):
        self.undo.append(("begin",))
        self.undo_depth += 1

    def _Undo_EndBlock2(self, proj, description, flags):
        if self.undo_depth == 0:
            raise ApiMisuse("Undo_EndBlock2 without Undo_BeginBlock2")
        self.undo_depth -= 1
        self.undo.append(("end", description))

    def _UpdateArrange(self):
        pass

    def _Main_OnCommand(self, command, flag):
        pass

    def _EnumProjects(self, index, buf, size):
        if index != -1:
            raise ApiMisuse("only the current project (-1) is modelled")
        return self.active_project.ptr, {1: self.active_project.path}

    def _ValidatePtr2(self, proj, pointer, kind):
        obj = self.objects.get(pointer)
        return int(bool(obj and obj.alive and obj.kind == kind))

    def _defer(self, code):
        self.deferred.append(code)
