"""The midi host's one error: what went wrong with a map, a port or the MIDI backend."""

from __future__ import annotations


class MidiHostError(Exception):
    """A mapping, port or backend problem; ``code`` is stable for --json.

    Codes: ``bad_mapping`` (the TOML map), ``no_port`` (a port name matches
    nothing or too much), ``unavailable`` (mido/python-rtmidi or the MIDI API
    is missing).
    """

    def __init__(self, message: str, code: str = "bad_mapping"):
        super().__init__(message)
        self.message = message
        self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}
