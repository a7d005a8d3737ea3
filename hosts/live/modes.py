"""What a trigger asks the daemon for: a mode string turned into one job request."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("separate", "continue", "melody")


@dataclass(frozen=True)
class Request:
    engine: str
    inputs: dict
    params: dict
    model: str
    stems: tuple[str, ...]  # outputs to play (their kinds); empty = every audio output


def parse_mode(mode: str) -> tuple[str, str]:
    """``separate``, ``separate:drums,bass``, ``drums`` (a stem name), ``continue`` or ``melody``.

    Returns:
        (kind, argument) where kind is one of MODES.
    Raises:
        ValueError: with the modes there are.
    """
    mode = (mode or "").strip()
    kind, _, arg = mode.partition(":")
    if kind in MODES:
        return kind, arg
    if kind and not arg and kind.replace("_", "").isalnum():
        return "separate", kind  # "drums": give me back only the drums
    raise ValueError(f"unknown live mode '{mode}'; modes: separate[:STEM,...], STEM, continue, melody")


def build_request(mode: str, wav: str, bpm: float, bars: int, beats_per_bar: int,
                  options: dict) -> Request:
    """The daemon job for ``mode`` on the captured ``wav``.

    Args:
        options: ``separate_model``, ``stems``, ``generate_model``, ``prompt``, ``seed``, ``loop``.

    Raises:
        ValueError: an unknown mode, or continue/melody with no prompt.
    """
    kind, arg = parse_mode(mode)
    if kind == "separate":
        stems = arg or options.get("stems") or "drums"
        return Request("separate", {"audio": wav}, {"stems": stems},
                       options.get("separate_model") or "htdemucs",
                       tuple(s.strip() for s in stems.split(",") if s.strip()))
    prompt = arg or options.get("prompt") or ""
    if not prompt.strip():  # MusicGen is steered by text even when continuing a clip
        raise ValueError(f"{kind} needs a prompt: start with --prompt 'TEXT' or trigger '{kind}:TEXT'")
    params = {"prompt": prompt, "bpm": round(bpm, 3), "bars": bars, "beats_per_bar": beats_per_bar}
    if options.get("loop"):
        params["loop"] = True
    if options.get("seed") is not None:
        params["seed"] = options["seed"]
    return Request("generate", {kind: wav}, params, options.get("generate_model") or "", ())
