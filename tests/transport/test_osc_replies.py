"""Who the OSC server serves, and where its replies may go: in-process, the daemon's own user.

Loopback UDP is refused to everyone (a datagram's sender cannot be known), a
TCP connection is served if its peer socket is the daemon's user's and hears
its replies on the connection, and a UDP reply goes only to a port that the
daemon's user alone listens on. Other users are in test_osc_users.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from bridge.transport import osc_tcp
from bridge.transport.osc_peers import PeerCheck, Reason, Verdict
from bridge.transport.osc_server import OscServer
from tests.transport import oscwire

PING = oscwire.message("/bridge/ping")
LOGGER = "bridge.transport.osc_server"


class _NoService:
    """Pings, reply ports and refusals need no service."""


@pytest.fixture
def server(media_dir):
    """Makes started in-process servers on 127.0.0.1:0 with a unix socket; stops them after."""
    made = []

    def make(**kwargs) -> OscServer:
        osc = OscServer(_NoService(), "127.0.0.1:0", socket_path=str(media_dir / f"o{len(made)}.sock"),
                        **kwargs)
        osc.start()
        made.append(osc)
        return osc

    yield make
    for osc in made:
        osc.stop()


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def messages(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


# -- loopback UDP ------------------------------------------------------------------------
def test_loopback_udp_is_refused_even_to_the_daemons_own_user(server, caplog):
    osc = server()
    song = "/nonexistent/song.wav"
    with udp_socket() as mine, caplog.at_level("WARNING", logger=LOGGER):
        for packet in (PING, oscwire.message("/bridge/reply_port", 9), oscwire.message("/bridge/cancel", "x"),
                       oscwire.message("/bridge/master", song, -14.0, -1.0, "/tmp/out"),
                       oscwire.message("/bridge/submit", "master", song, "/tmp/out"),
                       oscwire.bundle(None, PING, PING)):
            mine.sendto(packet, ("127.0.0.1", osc.port))
            address, (job_id, code, message) = oscwire.parse(mine.recv(65536))
            assert (address, job_id, code) == ("/bridge/error", "", "permission_denied")
            for words in ("UDP senders cannot be told apart from other users", "OSC TCP to this port",
                          "osc.unix://", "--osc-trust-loopback"):
                assert words in message, message
        with pytest.raises(socket.timeout):  # one answer per packet, nothing else
            mine.settimeout(0.3)
            mine.recv(65536)
    [line] = messages(caplog, "refused: UDP senders cannot be told apart")  # once a minute
    assert f"osc.unix://{osc.socket_path}" in line


def test_trust_loopback_serves_loopback_udp(server):
    osc = server(trust_loopback=True)
    with udp_socket() as mine:
        mine.sendto(PING, ("127.0.0.1", osc.port))
        assert oscwire.parse(mine.recv(65536))[0] == "/bridge/pong"


# -- TCP ---------------------------------------------------------------------------------
def test_a_tcp_peer_is_attributed_by_its_connection_or_refused(server, tmp_path):
    empty = tmp_path / "net"
    empty.mkdir()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        (empty / name).write_text("  sl  local_address rem_address   st\n")
    cases = [(PeerCheck(), None),  # the test's own socket: served
             (PeerCheck(proc_net=empty), "no open connection from that address and port is listed"),
             (PeerCheck(uid=os.geteuid() + 1), f"its socket belongs to uid {os.geteuid()}"),
             (PeerCheck(proc_net=tmp_path / "none"), "this system cannot tell which user")]
    for peers, words in cases:
        osc = server(peers=peers)
        with oscwire.TcpPeer(osc.port) as tcp:
            tcp.send(PING)
            address, args = oscwire.parse(tcp.recv(5))
            if words is None:
                assert address == "/bridge/pong"
                continue
            assert (address, args[1]) == ("/bridge/error", "permission_denied") and words in args[2], args
            assert tcp.recv(5) is None  # and the connection is closed: the ping never ran


def test_tcp_replies_come_back_on_the_connection_whole(server):
    """Four workers and the connection's reader answer at once; each frame stays whole."""
    osc = server()
    with oscwire.TcpPeer(osc.port) as tcp:
        for _ in range(3):
            tcp.send(oscwire.bundle(None, *[PING] * 64))
        got = [oscwire.parse(tcp.recv(5))[0] for _ in range(192)]
    assert got == ["/bridge/pong"] * 192


def test_a_tcp_reply_port_is_the_connections_own(server):
    osc = server()
    with udp_socket() as listener, oscwire.TcpPeer(osc.port) as first, oscwire.TcpPeer(osc.port) as second:
        first.send(oscwire.message("/bridge/reply_port", listener.getsockname()[1]))
        first.send(PING)
        assert oscwire.parse(listener.recv(65536))[0] == "/bridge/pong"
        second.send(PING)  # the same host, another connection: its replies stay on it
        assert oscwire.parse(second.recv(5))[0] == "/bridge/pong"
        first.send(oscwire.message("/bridge/reply_port", osc.port))  # never the daemon's own port
        assert "the daemon's own OSC port" in oscwire.parse(listener.recv(65536))[1][2]


def test_replies_to_a_closed_connection_are_dropped_with_one_log_line(server, caplog):
    osc = server()
    with caplog.at_level("WARNING", logger=LOGGER):
        with oscwire.TcpPeer(osc.port) as tcp:
            tcp.send(PING)
            assert oscwire.parse(tcp.recv(5))[0] == "/bridge/pong"
            for _ in range(3):  # answered after the connection is gone
                tcp.send(oscwire.bundle(time.time() + 0.5, PING))
            time.sleep(0.1)
        time.sleep(1.0)
        with oscwire.UnixPeer(osc.socket_path) as me:  # and the server goes on
            me.send(PING)
            assert oscwire.parse(me.recv(5))[0] == "/bridge/pong"
    [line] = messages(caplog, "dropped, and any later ones")
    assert "/bridge/pong to tcp:127.0.0.1:" in line


def test_a_peer_that_stops_reading_holds_a_send_for_at_most_the_timeout(monkeypatch):
    """Followers on four threads send to a connection nobody reads: each send returns within
    the timeout (plus one other's wait for the lock), the connection is then shut, and what
    was sent before is whole frames, one thread's each."""
    monkeypatch.setattr(osc_tcp, "SEND_TIMEOUT", 0.3)
    ours, theirs = socket.socketpair()
    ours.settimeout(0.3)  # as TcpServer sets it on each accepted socket
    conn = osc_tcp.Connection(ours)
    sent, took = [0] * 4, []

    def follower(index: int) -> None:
        packet = bytes([65 + index]) * 60000
        while True:
            started = time.monotonic()
            ok = conn.send(packet)
            took.append(time.monotonic() - started)
            if not ok:
                return
            sent[index] += 1

    threads = [threading.Thread(target=follower, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert max(took) <= 0.3 * 2 + 0.3, sorted(took)[-5:]
    assert not conn.send(b"late")  # shut: later replies are dropped at once
    data = _read_to_end(theirs)
    frames = [data[at + 4:at + 4 + 60000] for at in range(0, len(data) - 60003, 60004)]
    assert len(frames) == sum(sent) > 0 and len(data) - 60004 * len(frames) < 60004
    assert all(frame == frame[:1] * 60000 for frame in frames)  # none interleaved
    assert sorted({frame[0] - 65 for frame in frames}) == [i for i in range(4) if sent[i]]
    theirs.close()
    ours.close()


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


# -- UDP reply ports ---------------------------------------------------------------------
def test_a_udp_reply_goes_only_to_a_port_the_daemons_user_listens_on(server, caplog):
    osc = server()
    pathless = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # its replies go to the reply port
    listener = udp_socket()
    port = listener.getsockname()[1]
    try:
        with caplog.at_level("WARNING", logger=LOGGER):
            pathless.sendto(oscwire.message("/bridge/reply_port", port), osc.socket_path)
            pathless.sendto(PING, osc.socket_path)
            assert oscwire.parse(listener.recv(65536))[0] == "/bridge/pong"
            listener.close()  # the listener exits: whoever binds the port next must hear nothing
            pathless.sendto(PING, osc.socket_path)
            time.sleep(0.3)
    finally:
        pathless.close()
        listener.close()
    [line] = messages(caplog, "not sent to UDP")
    assert f"/bridge/pong for unix not sent to UDP 127.0.0.1:{port}: none of the daemon's user's" in line


class _OthersListen(PeerCheck):
    """The test's own TCP peers are its user's; every UDP port is shared with uid 65534."""

    def receivers(self, host: str, port: int) -> Verdict:
        return Verdict(Reason.OTHER_USER, (65534,))


def test_a_reply_port_another_uid_listens_on_is_forgotten(server, caplog):
    """SO_REUSEADDR on the owner's listener lets another user bind beside it, and rebind
    between a check and a send: once seen there, the reply port gets nothing more; a TCP
    connection's replies come back on it instead."""
    osc = server(peers=_OthersListen())
    with udp_socket() as listener, oscwire.UnixPeer(osc.socket_path) as me, \
            oscwire.TcpPeer(osc.port) as tcp, caplog.at_level("WARNING", logger=LOGGER):
        port = listener.getsockname()[1]
        pathless = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for packet in (oscwire.message("/bridge/reply_port", port), PING, PING):
            pathless.sendto(packet, osc.socket_path)
        pathless.close()
        tcp.send(oscwire.message("/bridge/reply_port", port))
        tcp.send(PING)
        assert oscwire.parse(tcp.recv(5))[0] == "/bridge/pong"  # at once, on the connection
        tcp.send(PING)
        assert oscwire.parse(tcp.recv(5))[0] == "/bridge/pong"
        me.send(PING)  # a sender bound to a path still hears its replies there
        assert oscwire.parse(me.recv(5))[0] == "/bridge/pong"
        with pytest.raises(socket.timeout):
            listener.settimeout(0.5)
            listener.recv(65536)
    assert osc._reply_ports == {}
    [line] = messages(caplog, "not sent to UDP")
    assert "a socket of uid 65534 is bound to that port" in line and "forgotten" in line


def test_without_proc_net_udp_replies_need_trust_loopback(server, tmp_path, caplog):
    for trust, heard in ((False, False), (True, True)):
        osc = server(peers=PeerCheck(proc_net=tmp_path / "none"), trust_loopback=trust)
        with udp_socket() as listener, caplog.at_level("WARNING", logger=LOGGER):
            pathless = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            pathless.sendto(oscwire.message("/bridge/reply_port", listener.getsockname()[1]), osc.socket_path)
            pathless.sendto(PING, osc.socket_path)
            pathless.close()
            listener.settimeout(0.5)
            try:
                got = oscwire.parse(listener.recv(65536))[0]
            except socket.timeout:
                got = None
        assert got == ("/bridge/pong" if heard else None)
    assert messages(caplog, "this system cannot tell who listens there")


def test_the_log_kinds_cover_every_refusal_and_drop():
    from bridge.transport.osc_peers import REFUSALS, UNHEARD
    from bridge.transport.osc_server import LOG_KINDS

    assert set(REFUSALS) == {r for r in Reason if r not in (Reason.NONE, Reason.REMOTE)}
    assert {f"refused {r.value}" for r in REFUSALS} | {f"unheard {r.value}" for r in UNHEARD} <= set(LOG_KINDS)
