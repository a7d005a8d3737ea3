"""Handing results to `studio-bridge live`, which plays them from the next bar line.

Over OSC (``/bridge/live/play ,s PATH...``) because that is how the live host
takes triggers already, and UDP never blocks the MIDI loop. UDP also says
nothing back: the live host's own output reports what it armed and played.
"""

from __future__ import annotations


class LiveLink:
    """The live host's OSC port.

    Args:
        host, port: where ``studio-bridge live --osc-port PORT`` listens.
    """

    def __init__(self, host: str, port: int):
        from pythonosc.udp_client import SimpleUDPClient

        self.address = f"{host}:{port}"
        self._client = SimpleUDPClient(host, port)

    def play(self, paths: list[str]) -> None:
        """Ask the live host to play these files (mixed) from its next bar line.

        Raises:
            OSError: the message could not be sent (no route, bad host name).
        """
        self._client.send_message("/bridge/live/play", [str(p) for p in paths])
