"""Which local user sent an OSC packet over loopback UDP or TCP.

OSC carries no credentials, and loopback is no boundary on a shared machine:
every local user can send to 127.0.0.1. On Linux the kernel lists each socket
with the user that made it in /proc/net/{udp,udp6,tcp,tcp6}, so the daemon
can look up the socket a packet came from by its address and port and serve
it only if it is the daemon's own user's.

A sender is attributed when at least one listed socket could have sent the
packet and every such socket is the daemon's user's and still open. A closed
socket lingers with inode 0 and shows as uid 0 whoever made it (a TCP socket
in TIME_WAIT, a UDP one of a program that already exited): its owner is not
known, so it is never trusted, even by a daemon running as root.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Reason(str, Enum):
    """Why a sender was refused ("" when it was not)."""

    NONE = ""
    OTHER_USER = "other-user"  # a live socket of another uid: it can hear a reply
    GONE = "gone"  # no live socket matches: the sender exited (or never was local)
    UNATTRIBUTABLE = "unattributable"  # no /proc/net: the platform cannot tell
    REMOTE = "remote"  # not loopback and not in --osc-allow


@dataclass(frozen=True)
class Verdict:
    """The answer for one sender.

    Attributes:
        reason: ``Reason.NONE`` if the sender is the daemon's user's.
        uids: the owners of the live sockets that matched.
    """

    reason: Reason
    uids: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is Reason.NONE

    @property
    def reachable(self) -> bool:
        """Whether a reply can still reach the sender (its socket is open)."""
        return self.reason in (Reason.OTHER_USER, Reason.UNATTRIBUTABLE)


ACCEPTED = Verdict(Reason.NONE)


@dataclass(frozen=True)
class Peer:
    """Where a packet came from, and so where its replies go.

    ``kind`` is "udp", "tcp" or "unix"; ``path`` is a unix sender's bound
    path ("" if it bound none: then replies go to its /bridge/reply_port).
    """

    kind: str
    host: str = ""
    port: int = 0
    path: str | bytes = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path!r}" if self.path else "unix"
        return f"{self.kind}:{self.host}:{self.port}"

    @property
    def reply_key(self) -> str:
        """Whose /bridge/reply_port applies: per host (one-shot senders change ports)."""
        return "unix" if self.kind == "unix" else self.host


class PeerCheck:
    """Looks senders up in the kernel's socket tables.

    Args:
        uid: the user to accept (default: the daemon's effective uid).
        proc_net: where the tables are (tests point this at their own files).
    """

    def __init__(self, uid: int | None = None, proc_net: Path | str = "/proc/net"):
        if uid is None:
            uid = os.geteuid() if hasattr(os, "geteuid") else -1
        self.uid = uid
        self.proc_net = Path(proc_net)

    @property
    def available(self) -> bool:
        """False where the platform lists no sockets (macOS, Windows)."""
        return (self.proc_net / "udp").is_file()

    def udp(self, host: str, port: int) -> Verdict:
        """The verdict for a datagram from ``host:port``.

        Any UDP socket bound to that port on that address, or on the wildcard
        address, could have sent it; all of them must be the daemon's user's.
        """
        if not self.available:
            return Verdict(Reason.UNATTRIBUTABLE)
        sender = _plain(ipaddress.ip_address(host))
        rows = [(uid, inode) for local, lport, _, _, uid, inode in self._rows(("udp", "udp6"), port)
                if lport == port and (local == sender or local.is_unspecified)]
        return self._judge(rows)

    def tcp(self, host: str, port: int, server_host: str, server_port: int) -> Verdict:
        """The verdict for a TCP connection from ``host:port`` to ``server_host:server_port``."""
        if not self.available:
            return Verdict(Reason.UNATTRIBUTABLE)
        sender, server = _plain(ipaddress.ip_address(host)), _plain(ipaddress.ip_address(server_host))
        rows = [(uid, inode) for local, lport, remote, rport, uid, inode in self._rows(("tcp", "tcp6"), port)
                if lport == port and local == sender and rport == server_port and remote == server]
        return self._judge(rows)

    def _judge(self, rows: list[tuple[int, int]]) -> Verdict:
        live = tuple(sorted({uid for uid, inode in rows if inode}))
        if any(uid != self.uid for uid in live):
            return Verdict(Reason.OTHER_USER, live)
        if not rows or any(not inode for _, inode in rows):
            return Verdict(Reason.GONE, live)
        return ACCEPTED

    def _rows(self, names: tuple[str, ...], port: int):
        """(local addr, local port, remote addr, remote port, uid, inode) of sockets on ``port``."""
        wanted = f":{port:04X} "
        for name in names:
            try:
                text = (self.proc_net / name).read_text()
            except OSError:  # no IPv6 on this machine, say
                continue
            for line in text.splitlines()[1:]:
                if wanted not in line[:60]:  # the local address leads each line: skip the rest cheaply
                    continue
                fields = line.split()
                if len(fields) < 10:
                    continue
                try:
                    local, lport = _endpoint(fields[1])
                    remote, rport = _endpoint(fields[2])
                    yield local, lport, remote, rport, int(fields[7]), int(fields[9])
                except ValueError:
                    continue


def _endpoint(text: str) -> tuple[Address, int]:
    """'0100007F:1F90' -> (127.0.0.1, 8080).

    The kernel prints an address as 32-bit words in the machine's byte order
    and the port in host order.
    """
    addr, _, port = text.partition(":")
    if len(addr) not in (8, 32):
        raise ValueError(text)
    raw = b"".join(struct.pack("=I", int(addr[i:i + 8], 16)) for i in range(0, len(addr), 8))
    return _plain(ipaddress.ip_address(raw)), int(port, 16)


def _plain(addr: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr
