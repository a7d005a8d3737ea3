"""OSC 1.0 over TCP (what liblo speaks): a 4-byte big-endian length before each packet.

Each connection's sender is checked once, when it is accepted; its packets
then go to the OSC server like datagrams do. A frame that cannot be read
ends its connection (framing is lost); a connection may idle between frames
as long as it likes, but a frame once begun must arrive within FRAME_TIMEOUT.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading

from .osc_packets import MAX_PACKET, Malformed
from .osc_peers import Peer

log = logging.getLogger(__name__)
MAX_TCP = 32  # TCP connections at once
FRAME_TIMEOUT = 10.0  # seconds a started frame may take to arrive


class TcpServer(socketserver.ThreadingTCPServer):
    """The TCP side of an ``OscServer`` (``osc``: its admit, refuse, packet, malformed).

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
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes the handler's recv
            except OSError:
                pass


class _Handler(socketserver.BaseRequestHandler):
    """Frames in, packets to the server; a bad frame ends the connection (framing is lost)."""

    def handle(self):
        osc = self.server.osc
        peer = Peer("tcp", self.client_address[0], self.client_address[1])
        while not osc.stopping.is_set():
            try:
                frame = read_frame(self.request)
            except Malformed as exc:
                if not osc.stopping.is_set():
                    osc.malformed(peer, exc)
                return
            except OSError:  # reset by the peer, or shut by stop()
                return
            if frame is None:
                return
            osc.packet(frame, peer)


def read_frame(sock: socket.socket) -> bytes | None:
    """One OSC 1.0 frame (int32 big-endian length, then the packet); None at a clean end.

    Between frames a connection may idle as long as it likes; once a frame
    has begun, all of it must arrive within FRAME_TIMEOUT.
    """
    sock.settimeout(None)
    head = sock.recv(4)
    if not head:
        return None
    sock.settimeout(FRAME_TIMEOUT)
    try:
        head += _recv_exact(sock, 4 - len(head))
        size = int.from_bytes(head, "big", signed=True)
        if not 0 < size <= MAX_PACKET:
            raise Malformed("tcp-bad-length", f"frame length {size}")
        return _recv_exact(sock, size)
    except socket.timeout:
        raise Malformed("tcp-stalled", f"no complete frame within {FRAME_TIMEOUT:.0f} s") from None


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise Malformed("tcp-truncated", f"{size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
