"""OSC transport: /bridge/* messages over UDP, TCP and a unix socket, translated onto the Service.

For controllers, Max/Pd, TouchOSC and DAW OSC surfaces. TCP uses OSC 1.0
framing (a 4-byte length before each packet), which is what liblo speaks.
Who is served (see ``osc_peers`` for why):
- the unix socket (datagrams, liblo's ``osc.unix://PATH``) is created mode
  0600: whoever can write to it is the daemon's user, so everything on it is;
- a loopback TCP connection, if the kernel lists its peer socket as the
  daemon's user's (checked once, when it is accepted);
- loopback UDP never (unless --osc-trust-loopback): a datagram's sender
  cannot be told apart from another user's, so each packet is refused;
- peers listed with --osc-allow, by their address (over UDP as safe as the LAN).

Address space (in):
  /bridge/master ,sffs  path target_lufs ceiling_dbtp out_dir
  /bridge/separate ,sss path model out_dir   ("" = the default model)
  /bridge/generate ,sffs.. prompt bpm bars out_dir [name value]...   tempo-locked
                        music (bpm 0 = no tempo lock); names as for submit, e.g.
                        model, seed, loop (1/0), variations, melody PATH, continue PATH
  /bridge/submit ,sss.. engine path out_dir [name value]...   any engine; a
                        name that is one of the engine's inputs is a path,
                        "model" picks the model, anything else is a parameter
  /bridge/reply_port ,i port     replies go to that UDP port instead: a unix
                        sender's with no bound path, a TCP connection's own, a
                        UDP host's
  /bridge/cancel ,s job_id
  /bridge/ping                   answered with /bridge/pong
Addresses match exactly (no OSC pattern matching: /bridge/* would start every
engine at once). Bundles run their messages at their time tag (at most 1 h
ahead, 256 waiting).
Replies (out), to a unix sender's path, on a TCP sender's connection (OSC 1.0
framing), to a UDP sender's port, or to the reply port; a UDP reply to a loopback
port goes out only if every socket bound there is the daemon's user's:
  /bridge/job ,ss job_id engine          accepted
  /bridge/progress ,sfs job_id fraction stage
  /bridge/done ,ss.. job_id path...      finished, one path per output
  /bridge/error ,sss job_id code message (job_id "" if it never started)
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import stat
import threading
import time
import traceback
from pathlib import Path

from pythonosc.osc_message_builder import build_msg

from ..core.config import is_loopback, split_host_port
from ..core.errors import BridgeError, Busy, Internal, InvalidArgument, Unavailable
from ..core.jobs import JobState
from ..core.service import Service
from .osc_packets import MALFORMED, MAX_PACKET, Malformed, TimeTagQueue, Workers, parse
from .osc_peers import ACCEPTED, Peer, PeerCheck, Reason, Verdict, refusal, unheard
from .osc_tcp import SEND_TIMEOUT, TcpServer
from .ratelog import LogLimiter

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.1  # seconds between /bridge/progress messages per job
LOG_INTERVAL = 60.0  # seconds: at most one line per kind of trouble, then a count
MAX_PENDING = 256  # bundle messages waiting for their time tags
HORIZON = 3600.0  # seconds: the furthest ahead a time tag may be
WORKERS = 4  # threads running handlers (a submit may hash a large input file)
MAX_QUEUED = 256  # handler calls waiting for a worker
MAX_FOLLOWED = 64  # jobs whose progress is being sent at once
MAX_REPLY_TEXT = 400  # characters of an error message in a reply
KNOWN = ("/bridge/master", "/bridge/separate", "/bridge/generate", "/bridge/submit",
         "/bridge/reply_port", "/bridge/cancel", "/bridge/ping")
# Every kind of trouble the log may report: one line per kind per LOG_INTERVAL,
# so its size is bounded by this set, not by what senders send.
LOG_KINDS = (*(f"malformed {kind}" for kind in MALFORMED),
             *(f"refused {reason.value}" for reason in Reason if reason.value),
             *(f"unheard {reason.value}" for reason in Reason if reason.value),
             *(f"internal {address}" for address in KNOWN), "internal receive", "internal follow",
             "busy", "reply failed", "tcp dropped", "tcp full")


class OscServer:
    """UDP and TCP OSC servers on one host:port pair, plus the unix socket.

    Args:
        service: the daemon's service.
        addr: HOST:PORT (port 0 picks a free one; TCP then takes the same number); "" = none.
        allow: peers (besides loopback) allowed to send.
        socket_path: the unix datagram socket ("" = none).
        trust_loopback: serve every loopback sender without asking whose it is
            (for single-user machines, and where the platform cannot tell).
        peers: the sender check (tests give their own).
    """

    def __init__(self, service: Service, addr: str, allow: list[str] | None = None,
                 socket_path: str = "", trust_loopback: bool = False, peers: PeerCheck | None = None):
        self.service = service
        self.allow = set(allow or [])
        self.trust_loopback = trust_loopback
        self.peers = peers or PeerCheck()
        self.socket_path = socket_path
        # By host: one-shot senders such as oscsend use a new source port per
        # message, so a (host, port) key would go stale and, once the OS reuses
        # that port, send replies to whoever holds it next.
        self._reply_ports: dict[str, int] = {}
        self._lock = threading.Lock()
        self._followed = 0
        self.stopping = threading.Event()
        self.limited = LogLimiter(log, LOG_INTERVAL)
        self._handlers = {"/bridge/master": self._master, "/bridge/separate": self._separate,
                          "/bridge/generate": self._generate, "/bridge/submit": self._submit,
                          "/bridge/reply_port": self._reply_port, "/bridge/cancel": self._cancel,
                          "/bridge/ping": self._ping}
        self._workers = Workers(WORKERS, MAX_QUEUED)
        self._timetags = TimeTagQueue(self._due, MAX_PENDING, HORIZON)
        self.udp: socket.socket | None = None
        self.tcp: TcpServer | None = None
        self.unix: socket.socket | None = None
        self._reply_v4: socket.socket | None = None
        self._socket_inode = 0
        self.port = 0
        self._threads: list[threading.Thread] = []
        self._started = False
        try:
            if addr:
                self._bind_network(addr)
            if socket_path:
                self._bind_unix(Path(socket_path))
        except BaseException:
            self._close_sockets()
            raise

    def _bind_network(self, addr: str) -> None:
        host, port = split_host_port(addr, "--osc")
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.udp.bind((host, port))
            self.udp.setblocking(False)
            self.port = self.udp.getsockname()[1]
            self.tcp = TcpServer(self, (host, self.port), family)
        except OSError as exc:
            raise Unavailable(f"cannot listen for OSC on {addr}: {exc.strerror or exc}; pick another "
                              f"with --osc HOST:PORT") from None

    def _bind_unix(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_symlink() or path.exists():
            if path.is_symlink() or not stat.S_ISSOCK(path.stat().st_mode):
                raise Unavailable(f"{path} exists and is not a socket; remove it or pick another "
                                  f"path with --osc-socket PATH")
            _refuse_if_live(path)
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old = os.umask(0o177)  # born 0600: no window in which another user may connect
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise Unavailable(f"cannot create the OSC socket {path}: {exc.strerror or exc}; pick another "
                              f"with --osc-socket PATH") from None
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.setblocking(False)
        self.unix = sock
        self._socket_inode = path.stat().st_ino

    def start(self) -> None:
        self._started = True
        self._workers.start()
        self._timetags.start()
        receive = threading.Thread(target=self._receive, name="sb-osc", daemon=True)
        receive.start()
        self._threads.append(receive)
        if self.tcp:
            thread = threading.Thread(target=self.tcp.serve_forever, kwargs={"poll_interval": 0.2},
                                      name="sb-osc-tcp", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop at once: scheduled bundles are dropped, open connections closed."""
        self.stopping.set()
        dropped = self._timetags.stop()
        if dropped:
            log.warning("dropped %d OSC messages still waiting for their bundle's time tag", dropped)
        if self.tcp and self._started:
            self.tcp.shutdown()
            self.tcp.server_close()
        for thread in self._threads:
            thread.join(2.0)
        queued = self._workers.stop(2.0)
        if queued:
            log.warning("dropped %d OSC messages not yet handled", queued)
        self.limited.flush(final=True)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in (self.udp, self.unix, self._reply_v4):
            if sock is not None:
                sock.close()
        if self.tcp is not None:
            self.tcp.server_close()
        if self.unix is not None and self._socket_inode:
            try:  # only our own socket: another daemon may have taken the path since
                if os.stat(self.socket_path).st_ino == self._socket_inode:
                    os.unlink(self.socket_path)
            except OSError:
                pass
            self._socket_inode = 0

    # -- packets in ----------------------------------------------------------------
    def _receive(self) -> None:
        """Read the UDP and unix sockets; the sender is checked before anything else,
        while a one-shot sender's socket may still be there to be found."""
        selector = selectors.DefaultSelector()
        for sock in (self.udp, self.unix):
            if sock is not None:
                selector.register(sock, selectors.EVENT_READ)
        with selector:
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=0.2) if selector.get_map() else ():
                    for _ in range(64):  # drain a burst, then look at the other socket
                        if not self._read_one(key.fileobj):
                            break
                if not selector.get_map():
                    self.stopping.wait(0.2)
                self.limited.flush()

    def _read_one(self, sock: socket.socket) -> bool:
        try:
            if sock is self.unix:
                data, _, flags, addr = sock.recvmsg(MAX_PACKET)
                peer = Peer("unix", path=addr or "")
                if flags & getattr(socket, "MSG_TRUNC", 0):
                    self.malformed(peer, Malformed("too-large", f"more than {MAX_PACKET} bytes"))
                    return True
            else:
                data, addr = sock.recvfrom(MAX_PACKET)
                peer = Peer("udp", addr[0], addr[1])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # e.g. an ICMP error reported on the socket: not a packet
            if exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                return True
            return False
        try:
            verdict = self.admit(peer)
            if not verdict.ok:
                self.refuse(peer, verdict)
            else:
                self.packet(data, peer)
        except Exception as exc:  # a bug: keep receiving
            self.limited.note("internal receive", "internal errors receiving OSC",
                              "internal error receiving OSC from %s: %s: %s", peer,
                              type(exc).__name__, _short(str(exc)))
            log.debug("internal error receiving OSC", exc_info=True)
        return True

    def admit(self, peer: Peer, server: tuple | None = None) -> Verdict:
        """Whether to serve ``peer``; ``server`` is a TCP connection's local address."""
        if peer.kind == "unix":
            return ACCEPTED  # the socket's file mode let it in
        if not is_loopback(peer.host):
            return ACCEPTED if peer.host in self.allow else Verdict(Reason.REMOTE)
        if self.trust_loopback:
            return ACCEPTED
        if peer.kind == "udp":
            return Verdict(Reason.LOOPBACK_UDP)
        return self.peers.tcp(peer.host, peer.port, server[0], server[1])

    def packet(self, data: bytes, peer: Peer) -> None:
        """Handle one packet from an admitted peer: at once, or at its bundle's time."""
        try:
            timed = parse(data)
        except Malformed as exc:
            self.malformed(peer, exc)
            return
        now = time.time()
        later = [(when, (peer, message)) for when, message in timed if when > now]
        if later:
            try:
                self._timetags.add(later)
            except InvalidArgument as exc:  # the whole packet is refused, not half of it
                self._error(peer, "", exc)
                return
        for when, message in timed:
            if when <= now:
                self._due((peer, message))

    def _due(self, item) -> None:
        peer, message = item
        if not self._workers.submit(self._handle, peer, message):
            if self.stopping.is_set():
                return
            self.limited.note("busy", f"OSC messages refused as busy (more than {MAX_QUEUED} waiting)",
                              "OSC message from %s refused: %d messages already wait to be handled",
                              peer, MAX_QUEUED)
            self._error(peer, "", Busy(f"the daemon has {MAX_QUEUED} OSC messages waiting to be "
                                       f"handled; send again in a moment"))

    def _handle(self, peer: Peer, message) -> None:
        address = message.address
        handler = self._handlers.get(address)
        try:
            if handler is None:
                raise InvalidArgument(f"unknown OSC address {_short(address)}; known: {', '.join(KNOWN)}")
            handler(peer, address, message.params)
        except BridgeError as exc:
            self._error(peer, "", exc)
        except Exception as exc:  # a bug: one line (the traceback at DEBUG), an answer, keep serving
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.limited.note(f"internal {address}", f"internal errors in OSC {address}",
                              "internal error in OSC %s from %s: %s: %s (at %s:%d)", address, peer,
                              type(exc).__name__, _short(str(exc)), Path(where.filename).name, where.lineno)
            log.debug("internal error in OSC %s", address, exc_info=True)
            self._error(peer, "", Internal(f"internal error handling {address}: {type(exc).__name__}; "
                                           f"the daemon's log says where"))

    def malformed(self, peer: Peer, exc: Malformed) -> None:
        what = MALFORMED.get(exc.kind, exc.kind)
        self.limited.note(f"malformed {exc.kind}", f"malformed OSC packets of kind {exc.kind}",
                          "malformed OSC packet (%s) from %s: %s (%s)", exc.kind, peer, what,
                          _short(exc.detail))
        self._error(peer, "", InvalidArgument(f"malformed OSC packet: {what}"
                                              + (f" ({exc.detail})" if exc.detail else "")))

    def refuse(self, peer: Peer, verdict: Verdict, tcp: socket.socket | None = None) -> None:
        """Say once per interval why a sender was refused, and tell the sender (``tcp``: on its
        connection) - unless it is remote: a spoofed address would make the daemon a reflector."""
        if verdict.reason is Reason.REMOTE:
            self.limited.note("refused remote", "OSC packets from peers not in --osc-allow",
                              "OSC packet from %s dropped: not loopback and not in --osc-allow", peer)
            return
        why, instead = refusal(verdict, self.peers.uid, self.socket_path or "PATH (serve --osc-socket PATH)")
        self.limited.note(f"refused {verdict.reason.value}", f"refused OSC senders ({verdict.reason.value})",
                          "OSC packet from %s refused: %s. OSC carries no credentials: %s",
                          peer, why, instead)
        if peer.kind == "udp" and peer.port == self.port:
            return  # the daemon's own datagram come back: an answer would loop
        why, instead = refusal(verdict, self.peers.uid, "PATH (see the daemon's daemon.json)")
        text = _short(f"refused: {why}; {instead}", MAX_REPLY_TEXT)
        dgram = _dgram("/bridge/error", ["", "permission_denied", text])
        try:
            if tcp is not None:
                tcp.sendall(len(dgram).to_bytes(4, "big") + dgram)
            elif self.udp is not None:
                self.udp.sendto(dgram, (peer.host, peer.port))  # to the sender itself, never a reply port
        except OSError:
            pass

    # -- handlers ----------------------------------------------------------------
    def _master(self, peer, address, args):
        path, lufs, ceiling, out_dir = _expect(args, "sffs", address)
        params = {"lufs": lufs, "ceiling": ceiling}
        self._start_job(peer, "master", {"audio": {"path": path}}, params, out_dir)

    def _separate(self, peer, address, args):
        path, model, out_dir = _expect(args, "sss", address)
        self._start_job(peer, "separate", {"audio": {"path": path}}, {}, out_dir, model=model)

    def _generate(self, peer, address, args):
        if len(args) < 4 or (len(args) - 4) % 2:
            raise InvalidArgument(f"{address} takes prompt bpm bars out_dir [name value]...; "
                                  f"got {len(args)} arguments")
        prompt, bpm, bars, out_dir = _expect(args[:4], "sffs", address)
        params = {"prompt": prompt}
        if bpm or bars:  # 0 0: a plain duration instead of a tempo lock
            params.update(bpm=bpm, bars=bars)
        inputs, extra, model = self._named("generate", args[4:], address, 5)
        self._start_job(peer, "generate", inputs, {**params, **extra}, out_dir, model=model)

    def _submit(self, peer, address, args):
        if len(args) < 3 or (len(args) - 3) % 2:
            raise InvalidArgument(
                f"{address} takes engine path out_dir [name value]...; got {len(args)} arguments")
        engine, path, out_dir = _expect(args[:3], "sss", address)
        inputs, params, model = self._named(engine, args[3:], address, 4)
        if path:
            inputs.setdefault("audio", {"path": path})
        self._start_job(peer, engine, inputs, params, out_dir, model=model)

    def _named(self, engine: str, pairs, address: str, first: int) -> tuple[dict, dict, str]:
        """(inputs, params, model) from name/value pairs: an engine input's name takes a
        path, "model" picks the model, anything else is a parameter."""
        input_names = {i.name for i in self.service.registry.get(engine).inputs}
        inputs, params, model = {}, {}, ""
        for index, (name, value) in enumerate(zip(pairs[0::2], pairs[1::2])):
            position = first + 2 * index
            if not isinstance(name, str):
                raise InvalidArgument(f"{address} argument {position} must be a parameter name "
                                      f"(a string); got {_short(repr(name))}")
            if not isinstance(value, (str, int, float)):  # bool is an int: T/F are fine
                raise InvalidArgument(f"{address} argument {position + 1} ({_short(name)}) must be a "
                                      f"string or a number; got {type(value).__name__}")
            if name in input_names:
                inputs[name] = {"path": str(value)}
            elif name == "model":
                model = str(value)
            else:
                params[name] = value
        return inputs, params, model

    def _reply_port(self, peer, address, args):
        if len(args) != 1 or not isinstance(args[0], int) or isinstance(args[0], bool) \
                or not 0 < args[0] < 65536:
            raise InvalidArgument(f"{address} takes one int port (1-65535); got {_short(repr(args))}")
        if args[0] == self.port and (peer.kind == "unix" or is_loopback(peer.host)):
            raise InvalidArgument(f"{address} {args[0]} is the daemon's own OSC port; give the UDP port "
                                  f"your program listens on")
        with self._lock:
            if peer.conn is not None:  # a connection's own: others from its host hear theirs
                peer.conn.reply_port = args[0]
            else:
                self._reply_ports[peer.reply_key] = args[0]

    def _cancel(self, peer, address, args):
        job_id = args[0] if args and isinstance(args[0], str) else ""
        try:
            self.service.cancel(job_id)
        except BridgeError as exc:
            self._error(peer, job_id, exc)

    def _ping(self, peer, address, args):
        self._send(peer, "/bridge/pong", [])

    # -- jobs -----------------------------------------------------------------------
    def _start_job(self, peer, engine, inputs, params, out_dir, model: str = "") -> None:
        with self._lock:
            if self._followed >= MAX_FOLLOWED:
                raise Busy(f"{MAX_FOLLOWED} OSC jobs are running or queued; send again when one ends")
            self._followed += 1
        try:
            client = f"osc:{peer.host}" if peer.kind != "unix" else "osc:unix"
            record = self.service.submit(engine, inputs, params, out_dir, model=model, client=client)
            self._send(peer, "/bridge/job", [record.id, engine])
            threading.Thread(target=self._follow, args=(peer, record.id), name="sb-osc-job",
                             daemon=True).start()
        except BaseException:
            with self._lock:
                self._followed -= 1
            raise

    def _follow(self, peer, job_id: str) -> None:
        last = 0.0
        try:
            for _, record in self.service.watch(job_id):
                if record.state is JobState.SUCCEEDED:
                    self._send(peer, "/bridge/done", [job_id, *[o["path"] for o in record.outputs]])
                elif record.state.terminal:
                    error = record.error or {"code": record.state.value, "message": record.state.value}
                    message = _short(error["message"], MAX_REPLY_TEXT)
                    self._send(peer, "/bridge/error", [job_id, error["code"], message])
                elif record.state is JobState.RUNNING and time.monotonic() - last >= PROGRESS_INTERVAL:
                    last = time.monotonic()
                    self._send(peer, "/bridge/progress", [job_id, float(record.progress), record.stage])
        except Exception as exc:  # the job goes on; its record tells how it ended
            self.limited.note("internal follow", "internal errors following OSC jobs",
                              "internal error following OSC job %s: %s: %s", job_id,
                              type(exc).__name__, _short(str(exc)))
        finally:
            with self._lock:
                self._followed -= 1

    # -- replies -----------------------------------------------------------------------
    def _error(self, peer: Peer, job_id: str, exc: BridgeError) -> None:
        self._send(peer, "/bridge/error",
                   [_short(job_id, 100), exc.code, _short(exc.message, MAX_REPLY_TEXT)])

    def _send(self, peer: Peer, address: str, args: list) -> None:
        """One reply: to a unix sender's path; else to the reply port it (or its TCP connection,
        or its UDP host) set, or a UDP sender's own port; else back on a TCP connection."""
        with self._lock:
            port = peer.conn.reply_port if peer.conn is not None else self._reply_ports.get(peer.reply_key)
        try:
            dgram = _dgram(address, args)
            if peer.kind == "unix" and peer.path:
                self.unix.sendto(dgram, peer.path)
                return
            if port is not None or peer.kind == "udp":
                host = "127.0.0.1" if peer.kind == "unix" else peer.host
                if self._udp_reply(peer, address, dgram, (host, port or peer.port)) or port is None:
                    return
                self._forget(peer, port)
            if peer.conn is not None:
                self._tcp_reply(peer, address, dgram)
        except (OSError, ValueError, UnicodeError) as exc:  # the peer went away; the job goes on
            self.limited.note("reply failed", "OSC replies that could not be sent",
                              "OSC reply %s to %s failed: %s", address, peer, _short(str(exc)))

    def _tcp_reply(self, peer: Peer, address: str, dgram: bytes) -> None:
        if not peer.conn.send(dgram) and peer.conn.first_drop():
            self.limited.note("tcp dropped", "OSC TCP connections whose replies were dropped",
                              "OSC reply %s to %s dropped, and any later ones: its connection is "
                              "closed, or it read nothing for %.0f s", address, peer, SEND_TIMEOUT)

    def _udp_reply(self, peer: Peer, address: str, dgram: bytes, dest: tuple[str, int]) -> bool:
        """Send by UDP; to a loopback port only if every socket bound there is the daemon's
        user's (a receiver must be bound to receive, so, unlike a sender, it can be known).

        Returns False only if another user's socket is bound there.
        """
        if is_loopback(dest[0]):
            verdict = self.peers.receivers(*dest)
            if not verdict.ok and not (verdict.reason is Reason.UNATTRIBUTABLE and self.trust_loopback):
                self.limited.note(f"unheard {verdict.reason.value}",
                                  f"OSC replies not sent to UDP ports ({verdict.reason.value})",
                                  "OSC reply %s for %s not sent to UDP %s:%d: %s", address, peer,
                                  dest[0], dest[1], unheard(verdict))
                return verdict.reason is not Reason.OTHER_USER
        sock = self._v4_socket() if peer.kind == "unix" else self.udp
        sock.sendto(dgram, dest)
        return True

    def _forget(self, peer: Peer, port: int) -> None:
        """Another user's socket shares the reply port: with SO_REUSEADDR on the owner's
        listener it may bind beside it, and rebind between a check and a send, so no reply
        goes there again (a TCP connection's come back on it) until a new reply_port is set."""
        with self._lock:
            if peer.conn is not None and peer.conn.reply_port == port:
                peer.conn.reply_port = None
            elif peer.conn is None and self._reply_ports.get(peer.reply_key) == port:
                del self._reply_ports[peer.reply_key]

    def _v4_socket(self) -> socket.socket:
        if self.udp is not None and self.udp.family == socket.AF_INET:
            return self.udp
        with self._lock:
            if self._reply_v4 is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                self._reply_v4 = sock
            return self._reply_v4


def _refuse_if_live(path: Path) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except OSError:
        return  # nobody receives on it: a stale socket of a daemon that died
    finally:
        probe.close()
    raise Unavailable(f"a daemon already receives OSC on {path}; stop it (SIGTERM, or Ctrl-C in its "
                      f"terminal) or use another --osc-socket")


def _dgram(address: str, args: list) -> bytes:
    return build_msg(address, args).dgram


def _short(text: str, limit: int = 120) -> str:
    """Bounded text for replies and the log (a sender controls what goes in)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _expect(args, types: str, address: str) -> list:
    """Check OSC arguments against a type string (s string, f number)."""
    if len(args) != len(types):
        raise InvalidArgument(f"{address} takes ,{types} ({len(types)} arguments); got {len(args)}")
    out = []
    for index, (value, kind) in enumerate(zip(args, types)):
        if kind == "f" and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value))
        elif kind == "s" and isinstance(value, str):
            out.append(value)
        else:
            raise InvalidArgument(f"{address} argument {index + 1} must be "
                                  f"{'a number' if kind == 'f' else 'a string'}; got {_short(repr(value))}")
    return out
