"""The controller map: a TOML file of ``[[binding]]`` tables, each a control and an action.

    [[binding]]
    type = "note"          # note | cc | program
    channel = 10           # 1-16, as printed on the device
    number = 36            # note, controller or program number (0-127)
    action = "generate"    # generate | regenerate | cancel | separate | master | set
    prompt = "dusty boom bap drums"
    bars = 4               # no bpm: the tempo comes from MIDI clock on the input port
    out = "gen"            # relative paths are relative to this file's folder
    play = true            # also hand the result to `studio-bridge live` (next bar line)

Optional top-level keys: ``out``, the default folder of every binding, and ``model``,
the default MusicGen model of generate bindings (a separate binding names its own);
``live = "127.0.0.1:9123"`` (or a port) is where ``studio-bridge live --osc-port``
listens, for bindings that say ``play = true``.
Every error names the binding (its number in the file and its control) and
what is allowed, and the file is checked completely before anything runs.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MidiHostError

TYPES = ("note", "cc", "program")
ACTIONS = ("generate", "regenerate", "cancel", "separate", "master", "set")
JOB_ACTIONS = ("generate", "regenerate", "separate", "master")

# Parameters of later generations a `set` binding may change, with their types.
SETTABLE = {"temperature": float, "top_k": int, "top_p": float, "cfg": float,
            "bars": int, "bpm": float, "variations": int}

_COMMON = {"type", "channel", "number", "action", "name"}
# Per action: (required keys, optional keys -> expected type). "out" is required for
# job actions unless the file sets a top-level default.
_KEYS: dict[str, tuple[dict, dict]] = {
    "generate": ({"prompt": str},
                 {"model": str, "bars": int, "bpm": (int, float), "beats_per_bar": int, "seed": int,
                  "temperature": (int, float), "top_k": int, "top_p": (int, float), "cfg": (int, float),
                  "loop": bool, "variations": int, "sample_rate": int, "out": str, "play": bool}),
    "regenerate": ({}, {"out": str, "play": bool}),
    "cancel": ({}, {}),
    "separate": ({"input": str}, {"model": str, "stems": str, "two_stems": str, "out": str, "play": bool}),
    "master": ({"input": str}, {"preset": str, "lufs": (int, float), "ceiling": (int, float),
                                "reference": str, "out": str, "play": bool}),
    "set": ({"param": str}, {"min": (int, float), "max": (int, float), "value": (int, float)}),
}
_TOP_LEVEL = {"binding", "model", "out", "live"}


@dataclass(frozen=True)
class Binding:
    """One control and what it does.

    Attributes:
        index: 1-based position in the file (for messages).
        type: note, cc or program.
        channel: 1-16.
        number: note, controller or program number.
        action: one of ACTIONS.
        params: the action's parameters as written (paths made absolute).
        name: an optional label.
    """

    index: int
    type: str
    channel: int
    number: int
    action: str
    params: dict = field(default_factory=dict)
    name: str = ""

    @property
    def control(self) -> tuple[str, int, int]:
        """(type, channel 1-16, number): the key a message is looked up by."""
        return (self.type, self.channel, self.number)

    def label(self) -> str:
        """How messages name this binding: 'binding 3 (note 36 on channel 10, generate)'."""
        named = f" '{self.name}'" if self.name else ""
        return f"binding {self.index}{named} ({self.type} {self.number} on channel {self.channel}, {self.action})"


@dataclass
class Mapping:
    """All bindings of a map file, looked up by control."""

    path: Path | None
    bindings: list[Binding]
    live: tuple[str, int] | None = None  # where `studio-bridge live` takes /bridge/live/play
    defaults: dict = field(default_factory=dict)  # the top-level model and out

    def __post_init__(self):
        self._by_control = {b.control: b for b in self.bindings}

    def find(self, type_: str, channel: int, number: int) -> Binding | None:
        return self._by_control.get((type_, channel, number))


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a map file.

    Raises:
        MidiHostError: the file is missing, is not TOML, or a binding is wrong
            (the message names the binding and what is allowed).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MidiHostError(f"map file '{path}' does not exist; write one (see `studio-bridge midi --help`) "
                            f"or record one with --learn") from None
    except OSError as exc:
        raise MidiHostError(f"cannot read map file '{path}': {exc.strerror}") from None
    return parse_mapping(text, base=path.parent, source=str(path))


def parse_mapping(text: str, base: Path | None = None, source: str = "map") -> Mapping:
    """Parse map TOML; relative ``out``/``input`` paths are resolved against ``base``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MidiHostError(f"{source} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise MidiHostError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; allowed: "
                            f"[[binding]] tables, the defaults model and out, and live")
    defaults = {k: data[k] for k in ("model", "out") if k in data}
    for key, value in defaults.items():
        if not isinstance(value, str):
            raise MidiHostError(f"{source}: top-level '{key}' must be a string, got {value!r}")
    tables = data.get("binding", [])
    if not isinstance(tables, list):
        raise MidiHostError(f"{source}: 'binding' must be an array of tables: write each as [[binding]]")
    bindings, seen = [], {}
    for index, table in enumerate(tables, start=1):
        binding = parse_binding(table, index, defaults, base)
        if binding.control in seen:
            raise MidiHostError(f"{source}: {binding.label()} uses the same control as "
                                f"{seen[binding.control].label()}; give each control one action")
        seen[binding.control] = binding
        bindings.append(binding)
    live = parse_live(data["live"], f"{source}: top-level 'live'") if "live" in data else None
    return Mapping(Path(source) if source != "map" else None, bindings, live, defaults)


def parse_live(value, where: str = "--live") -> tuple[str, int]:
    """Where the live host listens: 9123, "9123" or "host:9123" -> (host, port)."""
    text = str(value) if not isinstance(value, bool) else ""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MidiHostError(f"{where} must be the live host's OSC port (its --osc-port), as 9123 or "
                            f"\"127.0.0.1:9123\"; got {value!r}")
    return host or "127.0.0.1", int(port)


def parse_binding(table: dict, index: int, defaults: dict | None = None, base: Path | None = None,
                  where: str | None = None) -> Binding:
    """Check one ``[[binding]]`` table and return it as a Binding.

    ``where`` replaces "binding N (control)" at the start of error messages.
    """
    if not isinstance(table, dict):
        raise MidiHostError(f"binding {index}: must be a table ([[binding]]), got {table!r}")
    if where is None:
        where = f"binding {index}"
        control = _describe(table)
        if control:
            where += f" ({control})"
    for key in ("type", "channel", "action"):
        if key not in table:
            raise MidiHostError(f"{where}: missing '{key}'")
    type_, action = table["type"], table["action"]
    if type_ not in TYPES:
        raise MidiHostError(f"{where}: unknown type {type_!r}; use one of {', '.join(TYPES)}")
    if action not in ACTIONS:
        raise MidiHostError(f"{where}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    channel = table["channel"]
    if not _is_int(channel) or not 1 <= channel <= 16:
        raise MidiHostError(f"{where}: channel must be 1-16 (as printed on the device), got {channel!r}")
    if "number" not in table:
        what = {"note": "note number", "cc": "controller number", "program": "program number"}[type_]
        raise MidiHostError(f"{where}: missing 'number' (the {what}, 0-127)")
    number = table["number"]
    if not _is_int(number) or not 0 <= number <= 127:
        raise MidiHostError(f"{where}: number must be 0-127, got {number!r}")
    name = table.get("name", "")
    if not isinstance(name, str):
        raise MidiHostError(f"{where}: name must be a string, got {name!r}")

    required, optional = _KEYS[action]
    unknown = sorted(set(table) - _COMMON - set(required) - set(optional))
    if unknown:
        allowed = sorted(set(required) | set(optional))
        raise MidiHostError(f"{where}: unknown key(s) {', '.join(unknown)} for action '{action}'; "
                            f"allowed: {', '.join(allowed) or 'none'}")
    params = {}
    for key, kind in {**required, **optional}.items():
        if key not in table:
            if key in required:
                raise MidiHostError(f"{where}: action '{action}' needs '{key}'")
            continue
        value = table[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise MidiHostError(f"{where}: '{key}' must be {_kind_name(kind)}, got {value!r}")
        params[key] = value
    for key, value in (defaults or {}).items():
        # regenerate follows the last generation; the top-level model is MusicGen's (a
        # separate binding names its own demucs model)
        if key in optional and key not in params and action != "regenerate" \
                and (key == "out" or action == "generate"):
            params[key] = value
    if action in ("generate", "separate", "master") and "out" not in params:
        raise MidiHostError(f"{where}: action '{action}' needs 'out' (the folder for results), "
                            f"here or as a top-level default")
    _check_values(where, type_, action, params)
    for key in ("out", "input", "reference"):
        if key in params:
            path = Path(params[key]).expanduser()
            params[key] = str(path if path.is_absolute() or base is None else (base / path).resolve())
    return Binding(index, type_, channel, number, action, params, name)


def _check_values(where: str, type_: str, action: str, params: dict) -> None:
    if action == "generate":
        if not params["prompt"].strip():
            raise MidiHostError(f"{where}: prompt is empty; say what to generate")
        if "bars" in params and not 1 <= params["bars"] <= 256:
            raise MidiHostError(f"{where}: bars must be 1-256, got {params['bars']}")
        if "bpm" in params and not 20 <= params["bpm"] <= 300:
            raise MidiHostError(f"{where}: bpm must be 20-300, got {params['bpm']} "
                                f"(leave it out to follow MIDI clock)")
    if action == "set":
        param = params["param"]
        if param not in SETTABLE:
            raise MidiHostError(f"{where}: 'set' cannot change {param!r}; settable: {', '.join(SETTABLE)}")
        if type_ == "cc":
            missing = [k for k in ("min", "max") if k not in params]
            if missing:
                raise MidiHostError(f"{where}: a cc 'set' scales 0-127 into [min, max]; missing "
                                    f"{' and '.join(missing)}")
            if "value" in params:
                raise MidiHostError(f"{where}: a cc 'set' takes min/max, not value")
        elif "value" not in params:
            raise MidiHostError(f"{where}: a {type_} 'set' needs 'value' (what {param} becomes)")


def scaled(binding: Binding, cc_value: int):
    """The value a ``set`` binding gives its parameter for a control value 0-127."""
    param = binding.params["param"]
    if "value" in binding.params:
        value = binding.params["value"]
    else:
        low, high = binding.params["min"], binding.params["max"]
        value = low + (high - low) * cc_value / 127.0
    return round(value) if SETTABLE[param] is int else float(value)


def binding_toml(table: dict) -> str:
    """One ``[[binding]]`` table as TOML text (keys in a readable order)."""
    order = ["name", "type", "channel", "number", "action"]
    keys = [k for k in order if k in table] + sorted(k for k in table if k not in order)
    lines = ["[[binding]]"]
    for key in keys:
        lines.append(f"{key} = {_toml_value(table[key])}")
    return "\n".join(lines) + "\n"


def append_binding(path: str | Path, table: dict) -> Binding:
    """Add a binding to a map file (created if missing), keeping what is there byte for byte.

    The new table is checked together with the existing ones first, so a
    file is never left invalid.

    Returns:
        The new binding, as parsed from the file.
    """
    path = Path(path).expanduser()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = old + ("" if not old or old.endswith("\n") else "\n") + ("\n" if old else "") + binding_toml(table)
    mapping = parse_mapping(new, base=path.parent, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return mapping.bindings[-1]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    raise TypeError(f"cannot write {value!r} to TOML")


def _describe(table) -> str:
    """'note 36 on channel 10, generate' from whatever of those the table has."""
    control = []
    if table.get("type") in TYPES:
        control.append(f"{table['type']} {table.get('number', '?')}")
    if "channel" in table:
        control.append(f"on channel {table['channel']}")
    parts = [" ".join(control)] if control else []
    if isinstance(table.get("action"), str):
        parts.append(table["action"])
    return ", ".join(parts)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_name(kind) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return {str: "a string", int: "an integer", bool: "true or false", float: "a number"}[kind]
