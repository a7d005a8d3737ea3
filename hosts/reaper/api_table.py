"""The REAPER API functions this adapter calls, as REAPER's Python binding exposes them.

Written from REAPER's ReaScript documentation and the generated ``reaper_python.py``
binding, which follow one convention:

* every C argument is a Python argument, in order (string buffers and their sizes
  included: ``GetMediaSourceFileName(source, "", 4096)``);
* a function with no pointer (out) arguments returns its value as is: ``None`` for
  ``void``, an ``int`` for ``bool`` (the binding uses ``c_byte``), a ``float`` for
  ``double``, a ``str`` for ``const char*`` and for object pointers a string such as
  ``"(MediaItem*)0x00000000DEADBEEF"`` (NULL is ``...0x0000000000000000``, which is
  truthy in Python);
* a function with out arguments (``int*``, ``double*``, ``bool*``, string buffers)
  returns a tuple: the return value first unless it is ``void``, then *every*
  argument, in order, with the out ones replaced by what REAPER wrote.

``SIGNATURES`` maps each name to ``(return type, argument types)``. An argument type
ending in ``*`` is either an object pointer (``MediaItem*``, ...) or, when it is
``int*``, ``double*``, ``bool*`` or ``buf`` (a ``char*`` buffer), an out argument.
``defer`` is not in ``reaper_python.py``: REAPER puts ``RPR_defer(code)`` into each
script's globals and runs the code string in them later.
"""

from __future__ import annotations

OUT_TYPES = {"int*", "double*", "bool*", "buf"}
OBJECT_TYPES = {"ReaProject*", "MediaTrack*", "MediaItem*", "MediaItem_Take*", "PCM_source*", "void*"}

SIGNATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    # selection and items
    "CountSelectedMediaItems": ("int", ("ReaProject*",)),
    "GetSelectedMediaItem": ("MediaItem*", ("ReaProject*", "int")),
    "GetMediaItemInfo_Value": ("double", ("MediaItem*", "const char*")),
    "SetMediaItemInfo_Value": ("bool", ("MediaItem*", "const char*", "double")),
    "GetMediaItem_Track": ("MediaTrack*", ("MediaItem*",)),
    "AddMediaItemToTrack": ("MediaItem*", ("MediaTrack*",)),
    "CountTakes": ("int", ("MediaItem*",)),
    # takes and sources
    "GetActiveTake": ("MediaItem_Take*", ("MediaItem*",)),
    "SetActiveTake": ("void", ("MediaItem_Take*",)),
    "AddTakeToMediaItem": ("MediaItem_Take*", ("MediaItem*",)),
    "TakeIsMIDI": ("bool", ("MediaItem_Take*",)),
    "GetMediaItemTakeInfo_Value": ("double", ("MediaItem_Take*", "const char*")),
    "SetMediaItemTakeInfo_Value": ("bool", ("MediaItem_Take*", "const char*", "double")),
    "GetSetMediaItemTakeInfo_String": ("bool", ("MediaItem_Take*", "const char*", "buf", "bool")),
    "GetMediaItemTake_Source": ("PCM_source*", ("MediaItem_Take*",)),
    "SetMediaItemTake_Source": ("bool", ("MediaItem_Take*", "PCM_source*")),
    "PCM_Source_CreateFromFile": ("PCM_source*", ("const char*",)),
    "GetMediaSourceFileName": ("void", ("PCM_source*", "buf", "int")),
    "GetMediaSourceType": ("void", ("PCM_source*", "buf", "int")),
    "GetMediaSourceLength": ("double", ("PCM_source*", "bool*")),
    "GetMediaSourceSampleRate": ("int", ("PCM_source*",)),
    # tracks
    "CountTracks": ("int", ("ReaProject*",)),
    "GetTrack": ("MediaTrack*", ("ReaProject*", "int")),
    "GetSelectedTrack": ("MediaTrack*", ("ReaProject*", "int")),
    "InsertTrackAtIndex": ("void", ("int", "bool")),
    "GetMediaTrackInfo_Value": ("double", ("MediaTrack*", "const char*")),
    "SetMediaTrackInfo_Value": ("bool", ("MediaTrack*", "const char*", "double")),
    "GetSetMediaTrackInfo_String": ("bool", ("MediaTrack*", "const char*", "buf", "bool")),
    # time selection and tempo map
    "GetSet_LoopTimeRange2": ("void", ("ReaProject*", "bool", "bool", "double*", "double*", "bool")),
    "TimeMap_GetTimeSigAtTime": ("void", ("ReaProject*", "double", "int*", "int*", "double*")),
    # project, state, UI
    "EnumProjects": ("ReaProject*", ("int", "buf", "int")),
    "GetProjectPathEx": ("void", ("ReaProject*", "buf", "int")),
    "GetExtState": ("const char*", ("const char*", "const char*")),
    "SetExtState": ("void", ("const char*", "const char*", "const char*", "bool")),
    "GetUserInputs": ("bool", ("const char*", "int", "const char*", "buf", "int")),
    "ShowMessageBox": ("int", ("const char*", "const char*", "int")),
    "ShowConsoleMsg": ("void", ("const char*",)),
    "Undo_BeginBlock2": ("void", ("ReaProject*",)),
    "Undo_EndBlock2": ("void", ("ReaProject*", "const char*", "int")),
    "UpdateArrange": ("void", ()),
    "Main_OnCommand": ("void", ("int", "int")),
    "ValidatePtr2": ("bool", ("ReaProject*", "void*", "const char*")),
    "defer": ("void", ("const char*",)),
}


def arg_count(name: str) -> int:
    """How many Python arguments ``RPR_<name>`` takes."""
    return len(SIGNATURES[name][1])


def returns_tuple(name: str) -> bool:
    """Whether ``RPR_<name>`` answers with a tuple (it has out arguments)."""
    return any(t in OUT_TYPES for t in SIGNATURES[name][1])


def result_shape(name: str) -> str | int:
    """``"none"``, ``"value"`` or, for tuple answers, the tuple's length."""
    ret, args = SIGNATURES[name]
    if returns_tuple(name):
        return len(args) + (0 if ret == "void" else 1)
    return "none" if ret == "void" else "value"


def out_positions(name: str) -> list[int]:
    """Indexes (in the answer tuple) where REAPER's written values are."""
    ret, args = SIGNATURES[name]
    first = 0 if ret == "void" else 1
    return [first + i for i, t in enumerate(args) if t in OUT_TYPES]
