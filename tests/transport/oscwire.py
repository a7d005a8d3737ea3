"""OSC packets by hand, standard library only.

Tests build odd packets with it that no OSC library would write, and the
other-user tests copy this file next to the scripts they run as `nobody`
under the system python3 (which has none of the project's packages).
"""

from __future__ import annotations

import struct

NTP_DELTA = 2208988800  # seconds from 1900 (NTP's epoch) to 1970
IMMEDIATELY = None


def string(value: str | bytes) -> bytes:
    """An OSC string: the bytes, a zero, padded to 4."""
    raw = value.encode() if isinstance(value, str) else value
    return raw + b"\0" * (4 - len(raw) % 4)


def blob(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value + b"\0" * (-len(value) % 4)


def message(address: str | bytes, *args, types: str | None = None) -> bytes:
    """A message; args typed by their Python type (bool T/F, int i, float f, str s, bytes b,
    None N) unless ``types`` (without the comma) is given, which is then written as is."""
    tags, data = "", b""
    for arg in args:
        if isinstance(arg, bool):
            tags += "T" if arg else "F"
        elif isinstance(arg, int):
            tags, data = tags + "i", data + struct.pack(">i", arg)
        elif isinstance(arg, float):
            tags, data = tags + "f", data + struct.pack(">f", arg)
        elif isinstance(arg, str):
            tags, data = tags + "s", data + string(arg)
        elif isinstance(arg, bytes):
            tags, data = tags + "b", data + blob(arg)
        elif arg is None:
            tags += "N"
        else:
            raise TypeError(f"no OSC type for {arg!r}")
    return string(address) + string("," + (tags if types is None else types)) + data


def timetag(when: float | None) -> bytes:
    """An NTP time tag for ``when`` (seconds since 1970), or "immediately" for None."""
    if when is None:
        return struct.pack(">Q", 1)
    seconds = when + NTP_DELTA
    return struct.pack(">II", int(seconds), int((seconds % 1) * 2 ** 32))


def bundle(when: float | None, *elements: bytes) -> bytes:
    """A bundle of messages or bundles, due at ``when`` (None = immediately)."""
    return b"#bundle\0" + timetag(when) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def frame(packet: bytes) -> bytes:
    """OSC 1.0 TCP framing: a big-endian int32 length, then the packet."""
    return struct.pack(">i", len(packet)) + packet


def parse(dgram: bytes) -> tuple[str, list]:
    """(address, args) of a reply (types s, i, f, h, d, T, F, N)."""
    def read_string(at: int) -> tuple[str, int]:
        end = dgram.index(b"\0", at)
        return dgram[at:end].decode(), (end // 4 + 1) * 4

    address, at = read_string(0)
    if at >= len(dgram):
        return address, []
    tags, at = read_string(at)
    args: list = []
    for tag in tags[1:]:
        if tag == "s":
            value, at = read_string(at)
        elif tag in "if":
            value = struct.unpack(">" + tag, dgram[at:at + 4])[0]
            at += 4
        elif tag in "hd":
            value = struct.unpack(">" + ("q" if tag == "h" else "d"), dgram[at:at + 8])[0]
            at += 8
        else:
            value = {"T": True, "F": False, "N": None}[tag]
        args.append(value)
    return address, args
