"""The one object through which the adapter talks to REAPER.

:class:`Reaper` wraps a namespace of ``RPR_*`` functions (REAPER's, from a script's
globals and ``reaper_python``; in tests, an in-memory model of REAPER) and unpacks
the binding's answers by position as :mod:`hosts.reaper.api_table` records them.
Object pointers stay opaque strings; a NULL pointer comes back as ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PROJ = 0  # the active project, as every ReaProject* argument takes it
BUF = 4096
_POINTER = re.compile(r"^\((\w+\*)\)0x([0-9A-Fa-f]+)$")


def _ptr(value):
    """A pointer string, or None for NULL (the binding returns NULL as a truthy string)."""
    if value is None:
        return None
    match = _POINTER.match(str(value))
    if match and int(match.group(2), 16) == 0:
        return None
    return value


class Reaper:
    """REAPER's API, narrowed to what the actions need.

    Args:
        functions: mapping of ``RPR_<name>`` to callables (a script's ``globals()``
            merged with ``reaper_python``'s, or a fake).
        namespace: where deferred callbacks are stored by name, because
            ``RPR_defer`` takes a code string that REAPER runs in the script's
            globals. Defaults to ``functions`` itself.
    """

    def __init__(self, functions: dict, namespace: dict | None = None):
        self._fns = functions
        self._ns = namespace if namespace is not None else functions
        self._deferred = 0
        self.project = None  # the project an action started in (see bind_project)

    @classmethod
    def from_script(cls, script_globals: dict) -> Reaper:
        """The API inside REAPER: the script's globals, plus ``reaper_python`` if importable."""
        functions = {}
        try:
            import reaper_python  # provided by REAPER

            functions.update({k: v for k, v in vars(reaper_python).items() if k.startswith("RPR_")})
        except ImportError:
            pass
        functions.update({k: v for k, v in script_globals.items() if k.startswith("RPR_")})
        return cls(functions, script_globals)

    def call(self, name: str, *args):
        try:
            fn = self._fns["RPR_" + name]
        except KeyError:
            raise RuntimeError(f"REAPER has no RPR_{name}; this needs REAPER 6 or newer") from None
        return fn(*args)

    def has(self, name: str) -> bool:
        return ("RPR_" + name) in self._fns

    # -- items and takes --------------------------------------------------------------
    def selected_items(self) -> list:
        count = self.call("CountSelectedMediaItems", PROJ)
        return [p for p in (_ptr(self.call("GetSelectedMediaItem", PROJ, i)) for i in range(count)) if p]

    def item(self, item, key: str) -> float:
        return self.call("GetMediaItemInfo_Value", item, key)

    def set_item(self, item, key: str, value: float) -> None:
        self.call("SetMediaItemInfo_Value", item, key, float(value))

    def item_track(self, item):
        return _ptr(self.call("GetMediaItem_Track", item))

    def add_item(self, track):
        return _ptr(self.call("AddMediaItemToTrack", track))

    def take_count(self, item) -> int:
        return self.call("CountTakes", item)

    def active_take(self, item):
        return _ptr(self.call("GetActiveTake", item))

    def set_active_take(self, take) -> None:
        self.call("SetActiveTake", take)

    def add_take(self, item):
        return _ptr(self.call("AddTakeToMediaItem", item))

    def take_is_midi(self, take) -> bool:
        return bool(self.call("TakeIsMIDI", take))

    def take(self, take, key: str) -> float:
        return self.call("GetMediaItemTakeInfo_Value", take, key)

    def set_take(self, take, key: str, value: float) -> None:
        self.call("SetMediaItemTakeInfo_Value", take, key, float(value))

    def take_name(self, take) -> str:
        return self.call("GetSetMediaItemTakeInfo_String", take, "P_NAME", "", False)[3]

    def set_take_name(self, take, name: str) -> None:
        self.call("GetSetMediaItemTakeInfo_String", take, "P_NAME", name, True)

    def take_source(self, take):
        return _ptr(self.call("GetMediaItemTake_Source", take))

    def set_take_file(self, take, path: str) -> bool:
        """Point a take at an audio file (a new PCM source)."""
        source = _ptr(self.call("PCM_Source_CreateFromFile", path))
        return bool(source) and bool(self.call("SetMediaItemTake_Source", take, source))

    def source_file(self, source) -> str:
        return self.call("GetMediaSourceFileName", source, "", BUF)[1]

    def source_type(self, source) -> str:
        return self.call("GetMediaSourceType", source, "", BUF)[1]

    def source_length(self, source) -> float:
        """Seconds (REAPER answers in quarter notes for beat-based sources; audio files are not)."""
        return self.call("GetMediaSourceLength", source, False)[0]

    def source_rate(self, source) -> int:
        return self.call("GetMediaSourceSampleRate", source)

    # -- tracks -------------------------------------------------------------------------
    def track_count(self) -> int:
        return self.call("CountTracks", PROJ)

    def track_at(self, index: int):
        return _ptr(self.call("GetTrack", PROJ, index))

    def selected_track(self):
        return _ptr(self.call("GetSelectedTrack", PROJ, 0))

    def track(self, track, key: str) -> float:
        return self.call("GetMediaTrackInfo_Value", track, key)

    def set_track(self, track, key: str, value: float) -> None:
        self.call("SetMediaTrackInfo_Value", track, key, float(value))

    def track_index(self, track) -> int:
        """0-based position (IP_TRACKNUMBER is 1-based; 0 = not found, -1 = master)."""
        return int(self.track(track, "IP_TRACKNUMBER")) - 1

    def track_name(self, track) -> str:
        return self.call("GetSetMediaTrackInfo_String", track, "P_NAME", "", False)[3]

    def set_track_name(self, track, name: str) -> None:
        self.call("GetSetMediaTrackInfo_String", track, "P_NAME", name, True)

    def insert_track(self, index: int):
        """A new track at ``index`` (0-based), REAPER's default settings applied."""
        self.call("InsertTrackAtIndex", index, True)
        return self.track_at(index)

    # -- time -------------------------------------------------------------------------
    def time_selection(self) -> tuple[float, float]:
        answer = self.call("GetSet_LoopTimeRange2", PROJ, False, False, 0.0, 0.0, False)
        return answer[3], answer[4]

    def time_signature_at(self, seconds: float) -> tuple[int, int, float]:
        """(numerator, denominator, quarter-note BPM) of the tempo map at a time."""
        answer = self.call("TimeMap_GetTimeSigAtTime", PROJ, float(seconds), 0, 0, 0.0)
        return answer[2], answer[3], answer[4]

    # -- project, state, UI -----------------------------------------------------------
    def current_project(self):
        return _ptr(self.call("EnumProjects", -1, "", BUF)[0])

    def bind_project(self) -> None:
        """Remember the active project: results must go back to it, not to another tab."""
        self.project = self.current_project()

    def project_is_active(self) -> bool:
        return self.project is None or self.current_project() == self.project

    def project_is_open(self) -> bool:
        return self.project is None or bool(self.call("ValidatePtr2", PROJ, self.project, "ReaProject*"))

    def media_folder(self) -> str:
        """The project's recording path (its media folder; a default one if unsaved)."""
        return self.call("GetProjectPathEx", PROJ, "", BUF)[1]

    def ext_state(self, key: str, default: str = "") -> str:
        return self.call("GetExtState", "StudioBridge", key) or default

    def set_ext_state(self, key: str, value: str) -> None:
        self.call("SetExtState", "StudioBridge", key, value, True)

    def ask(self, title: str, fields: list[tuple[str, str]]) -> list[str] | None:
        """A GetUserInputs dialog; values come back split on newlines (prompts may hold commas)."""
        if any("," in caption for caption, _ in fields):
            raise ValueError("GetUserInputs splits captions on commas; a caption cannot hold one")
        captions = ",".join(caption for caption, _ in fields) + ",separator=\n,extrawidth=250"
        defaults = "\n".join(value for _, value in fields)
        answer = self.call("GetUserInputs", title, len(fields), captions, defaults, BUF)
        if not answer[0]:
            return None
        values = answer[4].split("\n")
        return (values + [""] * len(fields))[: len(fields)]

    def message(self, text: str, title: str = "Studio Bridge") -> None:
        self.call("ShowMessageBox", text, title, 0)

    def console(self, text: str) -> None:
        self.call("ShowConsoleMsg", text if text.endswith("\n") else text + "\n")

    def undo_begin(self) -> None:
        self.call("Undo_BeginBlock2", PROJ)

    def undo_end(self, description: str) -> None:
        self.call("Undo_EndBlock2", PROJ, description, -1)

    def refresh(self) -> None:
        self.call("Main_OnCommand", 40047, 0)  # Peaks: Build any missing peaks
        self.call("UpdateArrange")

    def alive(self, pointer, kind: str) -> bool:
        """Whether an item/take/track still exists (the user may delete it mid-job)."""
        if not pointer:
            return False
        if not self.has("ValidatePtr2"):
            return True
        return bool(self.call("ValidatePtr2", self.project or PROJ, pointer, kind))

    def defer(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on REAPER's next idle cycle (never blocking its UI)."""
        self._deferred += 1
        name = f"_studio_bridge_deferred_{id(self)}_{self._deferred % 2}"
        self._ns[name] = callback
        self.call("defer", f"{name}()")
