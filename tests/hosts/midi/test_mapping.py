"""The TOML map: good maps parse, bad ones fail with messages that name the binding and what is allowed."""

from __future__ import annotations

import tomllib

import pytest

from hosts.midi.cli import parse_param
from hosts.midi.errors import MidiHostError
from hosts.midi.mapping import (
    append_binding,
    binding_toml,
    load_mapping,
    parse_mapping,
    scaled,
)

GOOD = """
model = "tiny"
out = "renders"

[[binding]]
name = "drums"
type = "note"
channel = 10
number = 36
action = "generate"
prompt = "dusty boom bap drums"
bars = 2

[[binding]]
type = "note"
channel = 10
number = 37
action = "regenerate"

[[binding]]
type = "cc"
channel = 1
number = 21
action = "set"
param = "temperature"
min = 0.5
max = 1.5

[[binding]]
type = "program"
channel = 1
number = 0
action = "separate"
input = "/abs/song.wav"
two_stems = "vocals"

[[binding]]
type = "note"
channel = 1
number = 60
action = "cancel"
"""


def test_a_good_map(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_text(GOOD)
    mapping = load_mapping(path)
    drums, regen, temp, sep, cancel = mapping.bindings
    assert mapping.find("note", 10, 36) is drums and mapping.find("note", 10, 38) is None
    assert drums.params == {"prompt": "dusty boom bap drums", "bars": 2, "model": "tiny",
                            "out": str(tmp_path / "renders")}  # relative to the map's folder
    assert drums.label() == "binding 1 'drums' (note 36 on channel 10, generate)"
    assert regen.params == {} and cancel.params == {}
    assert sep.params["input"] == "/abs/song.wav" and sep.params["out"] == str(tmp_path / "renders")
    assert "model" not in sep.params  # the top-level model is MusicGen's: demucs would refuse it
    assert mapping.defaults == {"model": "tiny", "out": "renders"}
    assert scaled(temp, 0) == 0.5 and scaled(temp, 127) == 1.5 and scaled(temp, 64) == pytest.approx(1.0039, abs=1e-3)


def binding(**fields) -> str:
    table = {"type": "note", "channel": 1, "number": 36, "action": "generate", "prompt": "x", "out": "o"}
    table.update(fields)
    return binding_toml({k: v for k, v in table.items() if v is not None})


@pytest.mark.parametrize("text, expected", [
    (binding(action="explode"), ("binding 1 (note 36 on channel 1, explode): unknown action 'explode'; "
                                "use one of generate, regenerate, cancel, separate, master, set")),
    (binding(channel=0), "binding 1 (note 36 on channel 0, generate): channel must be 1-16"),
    (binding(channel=17), "channel must be 1-16 (as printed on the device), got 17"),
    (binding(channel="ten"), "channel must be 1-16"),
    (binding(number=128), "number must be 0-127, got 128"),
    (binding(number=None), "binding 1 (note ? on channel 1, generate): missing 'number' (the note number, 0-127)"),
    (binding(type=None), "binding 1 (on channel 1, generate): missing 'type'"),
    (binding(type="knob"), "unknown type 'knob'; use one of note, cc, program"),
    (binding(prompt=None), "binding 1 (note 36 on channel 1, generate): action 'generate' needs 'prompt'"),
    (binding(out=None), "action 'generate' needs 'out' (the folder for results)"),
    (binding(prompt="  "), "prompt is empty"),
    (binding(bars="four"), "'bars' must be an integer, got 'four'"),
    (binding(bpm=400), "bpm must be 20-300, got 400 (leave it out to follow MIDI clock)"),
    (binding(tempo=120), "unknown key(s) tempo for action 'generate'; allowed: bars, beats_per_bar, bpm"),
    (binding(action="separate"), "unknown key(s) prompt for action 'separate'"),
    (binding(action="master", prompt=None), "action 'master' needs 'input'"),
    (binding(action="set", prompt=None, out=None, param="volume", value=1),
     "'set' cannot change 'volume'; settable: temperature, top_k, top_p, cfg, bars, bpm, variations"),
    (binding(type="cc", action="set", prompt=None, out=None, param="temperature", min=0.5),
     "binding 1 (cc 36 on channel 1, set): a cc 'set' scales 0-127 into [min, max]; missing max"),
    (binding(action="set", prompt=None, out=None, param="cfg"), "a note 'set' needs 'value'"),
    (binding() + "\n" + binding(prompt="y", name="again"),
     ("binding 2 'again' (note 36 on channel 1, generate) uses the same control as binding 1 "
     "(note 36 on channel 1, generate)")),
    ("speed = 3\n" + binding(), "unknown top-level key(s) speed"),
    ("binding = 3", "'binding' must be an array of tables"),
    ("[[binding]\ntype = ", "is not valid TOML"),
    (binding(play="yes"), "'play' must be true or false, got 'yes'"),
    ('live = "here"\n' + binding(), "top-level 'live' must be the live host's OSC port (its --osc-port), "
                                     "as 9123 or \"127.0.0.1:9123\"; got 'here'"),
])
def test_bad_bindings_name_the_binding_and_what_is_allowed(text, expected):
    with pytest.raises(MidiHostError) as caught:
        parse_mapping(text, source="pads.toml")
    assert expected in caught.value.message
    assert caught.value.code == "bad_mapping"


def test_the_second_binding_is_named_when_it_is_the_bad_one():
    text = binding() + "\n" + binding(number=40, channel=0)
    with pytest.raises(MidiHostError, match=r"binding 2 \(note 40 on channel 0, generate\): channel"):
        parse_mapping(text)


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(MidiHostError, match="does not exist.*--learn"):
        load_mapping(tmp_path / "nope.toml")


def test_learned_bindings_are_appended_and_the_file_is_kept(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_text("# my pads\n" + binding())
    new = append_binding(path, {"type": "cc", "channel": 2, "number": 21, "action": "set",
                                "param": "temperature", "min": 0.2, "max": 1.8})
    assert new.index == 2 and new.control == ("cc", 2, 21)
    text = path.read_text()
    assert text.startswith("# my pads\n") and len(tomllib.loads(text)["binding"]) == 2
    with pytest.raises(MidiHostError, match="same control"):  # refused, file untouched
        append_binding(path, {"type": "cc", "channel": 2, "number": 21, "action": "cancel"})
    assert path.read_text() == text
    quoted = append_binding(tmp_path / "new.toml", {"type": "note", "channel": 1, "number": 1,
                                                    "action": "generate", "prompt": 'say "hi"\\ ünï',
                                                    "out": "o"})
    assert quoted.params["prompt"] == 'say "hi"\\ ünï'


def test_param_values_read_as_toml_else_text():
    assert parse_param("bars=4") == ("bars", 4)
    assert parse_param("max=1.5") == ("max", 1.5)
    assert parse_param("loop=true") == ("loop", True)
    assert parse_param("prompt=dark techno") == ("prompt", "dark techno")
    assert parse_param('prompt="x = 1"') == ("prompt", "x = 1")
    with pytest.raises(ValueError):
        parse_param("bars")


def test_live_is_a_port_or_host_and_port():
    assert parse_mapping("live = 9123\n" + binding(play=True)).live == ("127.0.0.1", 9123)
    mapping = parse_mapping('live = "studio.local:9000"\n' + binding(play=True))
    assert mapping.live == ("studio.local", 9000) and mapping.bindings[0].params["play"] is True
    assert parse_mapping(binding()).live is None
