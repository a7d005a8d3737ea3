"""OSC 1.0 over TCP (what liblo speaks): a 4-byte big-endian length before each packet.

Each connection's sender is checked once, when it is accepted; its packets
then go to the OSC server like datagrams do, and its replies come back on the
connection, framed the same way (unless it set a /bridge/reply_port). A frame
that cannot be read ends its connection (framing is lost); a connection may
idle between frames as long as it likes, but a frame once begun must arrive
within FRAME_TIMEOUT.

Each accepted socket keeps one timeout, SEND_TIMEOUT, for its whole life:
replies are sent from other threads (workers, job followers) while the
handler reads, and a socket's timeout is one setting for both directions, so
it is never changed; the reader waits out its idle time in SEND_TIMEOUT steps.
"""

from __future__ import annotations

import itertools
import logging
import socket
import socketserver
import threading
import time

from .osc_packets import MAX_PACKET, Malformed
from .osc_peers import Peer

log = logging.getLogger(__name__)
MAX_TCP = 32  # TCP connections at once
FRAME_TIMEOUT = 10.0  # seconds a started frame may take to arrive
SEND_TIMEOUT = 2.0  # seconds a reply may wait for a peer that stopped reading


class TcpServer(socketserver.ThreadingTCPServer):
    """The TCP side of an ``OscServer`` (``osc``: its admit, refuse, packet, malformed, stopping).

    A stop does not wait for peers to hang up: socketserver joins every
    connection's thread on close, and a controller that keeps its connection
    open would block a graceful stop forever; so threads are daemons and
    ``server_close`` shuts the open connections.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, osc, addr: tuple, family: int):
        self.osc = osc
        self.address_family = family
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def verify_request(self, request, client_address) -> bool:
        request.settimeout(SEND_TIMEOUT)  # before anything is sent on it, a refusal included
        peer = Peer("tcp", client_address[0], client_address[1])
        with self._connections_lock:
            full = len(self._connections) >= MAX_TCP
        if full:
            self.osc.limited.note("tcp full", f"OSC TCP connections refused (more than {MAX_TCP} open)",
                                  "OSC TCP connection from %s closed: %d connections are open already",
                                  peer, MAX_TCP)
            return False
        verdict = self.osc.admit(peer, request.getsockname())
        if not verdict.ok:
            self.osc.refuse(peer, verdict, tcp=request)
        return verdict.ok

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        log.debug("OSC TCP connection from %s failed", client_address, exc_info=True)

    def server_close(self):
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)  # wakes the handler's recv


class Connection:
    """A TCP sender's connection: replies go back on it, framed, from any thread.

    One lock keeps each frame whole. A peer that stops reading holds a send for
    at most SEND_TIMEOUT; then the connection is shut (a frame cut short has
    lost the framing) and later replies are dropped, as they are once the
    connection has closed.

    Attributes:
        reply_port: the UDP port this connection's replies go to instead (/bridge/reply_port).
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reply_port: int | None = None
        self._lock = threading.Lock()
        self._open = True
        self._drops = itertools.count()

    def send(self, packet: bytes) -> bool:
        """Send one packet, framed; False if it was dropped (the connection is closed)."""
        if not self._lock.acquire(timeout=SEND_TIMEOUT):  # another send waits on a stalled peer
            return False
        try:
            if not self._open:
                return False
            try:
                self.sock.sendall(len(packet).to_bytes(4, "big") + packet)
                return True
            except OSError:  # closed by the peer, or it stopped reading (socket.timeout)
                self._open = False
                _shut(self.sock)
                return False
        finally:
            self._lock.release()

    def first_drop(self) -> bool:
        """True the first time it is asked: one log line per connection, not one per reply."""
        return next(self._drops) == 0

    def close(self) -> None:
        """No more sends: the socket is about to be closed (waits for a send in progress)."""
        with self._lock:
            self._open = False


class _Handler(socketserver.BaseRequestHandler):
    """Frames in, packets to the server; a bad frame ends the connection (framing is lost)."""

    def setup(self):
        self.conn = Connection(self.request)

    def handle(self):
        osc = self.server.osc
        peer = Peer("tcp", self.client_address[0], self.client_address[1], conn=self.conn)
        while not osc.stopping.is_set():
            try:
                frame = read_frame(self.request, osc.stopping)
            except Malformed as exc:
                if not osc.stopping.is_set():
                    osc.malformed(peer, exc)
                return
            except OSError:  # reset by the peer, or shut by stop()
                return
            if frame is None:
                return
            osc.packet(frame, peer)

    def finish(self):
        self.conn.close()


def read_frame(sock: socket.socket, stopping: threading.Event) -> bytes | None:
    """One OSC 1.0 frame (int32 big-endian length, then the packet); None at a clean end or a stop.

    Between frames a connection may idle as long as it likes; once a frame
    has begun, all of it must arrive within FRAME_TIMEOUT.
    """
    while True:
        try:
            head = sock.recv(4)
            break
        except socket.timeout:
            if stopping.is_set():
                return None
    if not head:
        return None
    deadline = time.monotonic() + FRAME_TIMEOUT
    head += _recv_exact(sock, 4 - len(head), deadline)
    size = int.from_bytes(head, "big", signed=True)
    if not 0 < size <= MAX_PACKET:
        raise Malformed("tcp-bad-length", f"frame length {size}")
    return _recv_exact(sock, size, deadline)


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks, left = [], size
    while left:
        try:
            chunk = sock.recv(min(left, 65536))
        except socket.timeout:
            if time.monotonic() >= deadline:
                raise Malformed("tcp-stalled", f"no complete frame within {FRAME_TIMEOUT:.0f} s") from None
            continue
        if not chunk:
            raise Malformed("tcp-truncated", f"{size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
