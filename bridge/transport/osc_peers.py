"""Whose is an OSC TCP connection, and who would hear a UDP reply.

OSC carries no credentials, and loopback is no boundary on a shared machine:
every local user can send to 127.0.0.1. On Linux the kernel lists each socket
with the user that made it in /proc/net/{udp,udp6,tcp,tcp6}.

- A TCP connection is attributed by its exact pair of addresses. While the
  daemon holds its end open no other socket can have that (local, remote)
  pair, so the one ESTABLISHED row with it is the peer's; the peer is served
  only if that row is the daemon's user's and still open.
- A UDP datagram cannot be attributed at all: no table says which socket sent
  it, and with SO_REUSEADDR another user may bind the very port of one of the
  owner's sockets, send, and close before the daemon looks. So loopback UDP
  senders are not served (see osc_server). What can be known is who would
  receive a reply: a datagram reaches only a socket bound to its port, so a
  UDP reply goes out only if every such socket is the daemon's user's. (If
  the owner's listener itself sets SO_REUSEADDR, another user may bind beside
  it between the look and the send; once seen, the reply port is forgotten.)

A closed socket lingers with inode 0 and shows as uid 0 whoever made it: its
owner is not known, so it is never trusted, even by a daemon running as root.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import NamedTuple

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ESTABLISHED = 1  # the kernel's TCP_ESTABLISHED, the "st" column


class Reason(str, Enum):
    """Why a sender was refused, or a reply not sent ("" when all is well)."""

    NONE = ""
    OTHER_USER = "other-user"  # a live socket of another uid
    GONE = "gone"  # no live socket of the daemon's user: it closed (or nobody listens)
    UNATTRIBUTABLE = "unattributable"  # no /proc/net: the platform cannot tell
    LOOPBACK_UDP = "loopback-udp"  # a datagram's sender cannot be known
    REMOTE = "remote"  # not loopback and not in --osc-allow


@dataclass(frozen=True)
class Verdict:
    """The answer for one sender or one reply's receivers.

    Attributes:
        reason: ``Reason.NONE`` if every socket involved is the daemon's user's.
        uids: the owners of the live sockets of other users that matched.
    """

    reason: Reason
    uids: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is Reason.NONE


ACCEPTED = Verdict(Reason.NONE)


# What a refused sender is told: why, and what to do instead ({socket}: the unix socket's URL).
REFUSALS = {
    Reason.LOOPBACK_UDP: (
        "UDP senders cannot be told apart from other users on this machine (no kernel table says "
        "which socket sent a datagram)",
        "send over OSC TCP to this port (each connection's user is known), to the unix socket "
        "{socket}, or serve with --osc-trust-loopback on a single-user machine"),
    Reason.OTHER_USER: (
        "its socket belongs to uid {uids}, not to the daemon's user (uid {uid})",
        "this daemon serves OSC only to its own user's programs. Start your own (studio-bridge "
        "serve) or ask its owner"),
    Reason.GONE: (
        "no open connection from that address and port is listed (it closed before the daemon "
        "looked), so its user cannot be known",
        "keep the connection open until it is answered, or send to the unix socket {socket}"),
    Reason.UNATTRIBUTABLE: (
        "this system cannot tell which user a loopback socket belongs to",
        "send to the unix socket {socket}, or serve with --osc-trust-loopback on a single-user machine"),
}
# Why a UDP reply to a loopback port was not sent.
UNHEARD = {
    Reason.OTHER_USER: "a socket of uid {uids} is bound to that port, and could read it; a reply "
                       "port is forgotten (set another that only the daemon's user listens on)",
    Reason.GONE: "none of the daemon's user's sockets listens there (its listener exited?), and "
                 "whoever binds the port next would read it",
    Reason.UNATTRIBUTABLE: "this system cannot tell who listens there (serve --osc-trust-loopback to "
                           "send anyway)",
}


def refusal(verdict: Verdict, uid: int, path: str) -> tuple[str, str]:
    """(why, what to do instead) for a refused sender; ``uid`` is the daemon's, ``path`` its unix socket."""
    why, instead = REFUSALS[verdict.reason]
    uids = ",".join(map(str, verdict.uids))
    return why.format(uids=uids, uid=uid), instead.format(socket=f"osc.unix://{path}")


def unheard(verdict: Verdict) -> str:
    """Why a UDP reply was not sent to a port whose receivers got ``verdict``."""
    return UNHEARD[verdict.reason].format(uids=",".join(map(str, verdict.uids)))


@dataclass(frozen=True)
class Peer:
    """Where a packet came from, and so where its replies go.

    ``kind`` is "udp", "tcp" or "unix"; ``path`` is a unix sender's bound
    path ("" if it bound none: then replies go to its /bridge/reply_port);
    ``conn`` is a TCP sender's connection (replies go back on it).
    """

    kind: str
    host: str = ""
    port: int = 0
    path: str | bytes = ""
    conn: object = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path!r}" if self.path else "unix"
        return f"{self.kind}:{self.host}:{self.port}"

    @property
    def reply_key(self) -> str:
        """Whose /bridge/reply_port applies to a unix or UDP sender: per host (one-shot
        senders change ports); a TCP connection keeps its own."""
        return "unix" if self.kind == "unix" else self.host


class _Row(NamedTuple):
    local: Address
    lport: int
    remote: Address
    rport: int
    state: int
    uid: int
    inode: int


class PeerCheck:
    """Looks sockets up in the kernel's socket tables.

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
        return (self.proc_net / "tcp").is_file() and (self.proc_net / "udp").is_file()

    def tcp(self, host: str, port: int, server_host: str, server_port: int) -> Verdict:
        """The verdict for the peer of the accepted connection ``host:port`` -> ``server_host:server_port``.

        The peer's socket is the row whose local end is ``host:port`` and whose
        remote end is the daemon's: exactly one, ESTABLISHED, open, the daemon's user's.
        """
        if not self.available:
            return Verdict(Reason.UNATTRIBUTABLE)
        pair = (_plain(ipaddress.ip_address(host)), port,
                _plain(ipaddress.ip_address(server_host)), server_port)
        rows = [row for row in self._rows(("tcp", "tcp6"), port) if row[:4] == pair]
        if others := self._others(rows):
            return Verdict(Reason.OTHER_USER, others)
        established = [row for row in rows if row.state == ESTABLISHED]
        if len(established) == 1 and self._mine(established[0]):
            return ACCEPTED
        return Verdict(Reason.GONE)

    def receivers(self, host: str, port: int) -> Verdict:
        """The verdict for a UDP datagram sent to ``host:port``.

        Any socket bound to that port on that address, or on the wildcard
        address, could receive it: there must be one, and every one must be
        the daemon's user's and open.
        """
        if not self.available:
            return Verdict(Reason.UNATTRIBUTABLE)
        dest = _plain(ipaddress.ip_address(host))
        rows = [row for row in self._rows(("udp", "udp6"), port)
                if row.lport == port and (row.local == dest or row.local.is_unspecified)]
        if others := self._others(rows):
            return Verdict(Reason.OTHER_USER, others)
        if rows and all(map(self._mine, rows)):
            return ACCEPTED
        return Verdict(Reason.GONE)

    def _mine(self, row: _Row) -> bool:
        return bool(row.inode) and row.uid == self.uid

    def _others(self, rows: list[_Row]) -> tuple[int, ...]:
        """The uids of live sockets among ``rows`` that are not the daemon's user's."""
        return tuple(sorted({row.uid for row in rows if row.inode and row.uid != self.uid}))

    def _rows(self, names: tuple[str, ...], port: int):
        """The sockets whose local or remote port is ``port``, from the named tables."""
        wanted = f":{port:04X} "
        for name in names:
            try:
                text = (self.proc_net / name).read_text()
            except OSError:  # no IPv6 on this machine, say
                continue
            for line in text.splitlines()[1:]:
                if wanted not in line[:100]:  # the addresses lead each line: skip the rest cheaply
                    continue
                fields = line.split()
                if len(fields) < 10:
                    continue
                try:
                    yield _Row(*_endpoint(fields[1]), *_endpoint(fields[2]), int(fields[3], 16),
                               int(fields[7]), int(fields[9]))
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
