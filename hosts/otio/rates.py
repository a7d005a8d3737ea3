"""Frame rates as editors type and write them, and the exact rates timecode counts at.

People type 23.976, 29.97 or 59.94 for the NTSC rates, which are exactly
24000/1001, 30000/1001 and 60000/1001; files store them as fractions or as
rounded decimals. Timecode arithmetic needs the exact rate (OpenTimelineIO
refuses 29.97 as a timecode rate, and 29.97 counted as 30 slips 3.6 s an hour).

Only ``fractions`` is imported here: the CLI parses ``--rate`` with it.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Whole rates editors use, and their NTSC (x 1000/1001) forms.
NOMINAL = (24, 25, 30, 48, 50, 60, 96, 100, 120)
EXAMPLES = "23.976, 24, 25, 29.97, 30, 50, 59.94, 30000/1001, 24000/1001"


class RateError(ValueError):
    """A frame rate that cannot be read; the message lists what is accepted."""


def parse_rate(text: str) -> Fraction:
    """``"29.97"`` or ``"30000/1001"`` -> Fraction(30000, 1001); ``"25"`` -> 25.

    A decimal within 0.01 of an NTSC rate (23.976, 23.98, 29.97, 59.94, ...)
    is that rate exactly.

    Raises:
        RateError: not a positive number or fraction, or above 1000 fps.
    """
    cleaned = str(text).strip().lower().removesuffix("fps").replace(" ", "")
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(?:/(\d+(?:\.\d*)?))?", cleaned)
    over = Fraction(match[2]) if match and match[2] else Fraction(1)
    if not match or not over or not 0 < Fraction(match[1]) / over <= 1000:
        raise RateError(f"frame rate '{text}' is not a rate above 0 and up to 1000 fps; give one as "
                        f"editors write it: {EXAMPLES}")
    value = Fraction(match[1]) / over
    return exact(value)


def exact(rate) -> Fraction:
    """``rate`` (float, Fraction, int) as the exact rate it stands for: whole, NTSC, or itself."""
    value = Fraction(rate).limit_denominator(1_000_000)
    for nominal in NOMINAL:
        for candidate in (Fraction(nominal), Fraction(nominal * 1000, 1001)):
            if abs(value - candidate) < Fraction(1, 100):
                return candidate
    return value


def timecode_rate(rate) -> float:
    """The rate to count timecode at for media or a timeline at ``rate`` (exact NTSC)."""
    return float(exact(rate))


def label(rate) -> str:
    """``30000/1001`` -> "29.97"; ``25`` -> "25" (how people say it)."""
    value = exact(rate)
    return f"{float(value):.3f}".rstrip("0").rstrip(".") if value.denominator != 1 else str(value.numerator)
