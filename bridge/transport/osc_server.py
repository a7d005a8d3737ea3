"""OSC transport: /bridge/* messages over UDP and TCP, translated onto the Service.

For controllers, Max/Pd, TouchOSC and DAW OSC surfaces. TCP uses OSC 1.0
framing (a 4-byte length before each packet), which is what liblo speaks.

Address space (in):
  /bridge/master ,sffs  path target_lufs ceiling_dbtp out_dir
  /bridge/separate ,sss path model out_dir   ("" = the default model)
  /bridge/generate ,sffs.. prompt bpm bars out_dir [name value]...   tempo-locked
                        music (bpm 0 = no tempo lock); names as for submit, e.g.
                        model, seed, loop (1/0), variations, melody PATH, continue PATH
  /bridge/submit ,sss.. engine path out_dir [name value]...   any engine; a
                        name that is one of the engine's inputs is a path,
                        "model" picks the model, anything else is a parameter
  /bridge/reply_port ,i port     replies to this host go to that UDP port
  /bridge/cancel ,s job_id
  /bridge/ping                   answered with /bridge/pong
Replies (out), to the sender or its reply port:
  /bridge/job ,ss job_id engine          accepted
  /bridge/progress ,sfs job_id fraction stage
  /bridge/done ,ss.. job_id path...      finished, one path per output
  /bridge/error ,sss job_id code message (job_id "" if it never started)
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.osc_tcp_server import MODE_1_0, ThreadingOSCTCPServer

from ..core.config import is_loopback, split_host_port
from ..core.errors import BridgeError, InvalidArgument, Unavailable
from ..core.jobs import JobState
from ..core.service import Service

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.1  # seconds between /bridge/progress messages per job


class OscServer:
    """UDP and TCP OSC servers on one host:port pair, sharing one dispatcher.

    Args:
        service: the daemon's service.
        addr: HOST:PORT (port 0 picks a free one; TCP then takes the same number).
        allow: peers (besides loopback) allowed to send.
    """

    def __init__(self, service: Service, addr: str, allow: list[str] | None = None):
        self.service = service
        self.allow = set(allow or [])
        # By host: one-shot senders such as oscsend use a new source port per
        # message, so a (host, port) key would go stale and, once the OS reuses
        # that port, send replies to whoever holds it next.
        self._reply_ports: dict[str, int] = {}
        self._lock = threading.Lock()
        host, port = split_host_port(addr, "--osc")
        dispatcher = Dispatcher()
        for path, handler in (("/bridge/master", self._master), ("/bridge/separate", self._separate),
                              ("/bridge/generate", self._generate), ("/bridge/submit", self._submit),
                              ("/bridge/reply_port", self._reply_port),
                              ("/bridge/cancel", self._cancel), ("/bridge/ping", self._ping)):
            dispatcher.map(path, handler, needs_reply_address=True)
        dispatcher.set_default_handler(self._unknown, needs_reply_address=True)
        self.udp = None
        try:
            self.udp = ThreadingOSCUDPServer((host, port), dispatcher)
            self.port = self.udp.server_address[1]
            self.tcp = _TcpServer((host, self.port), dispatcher, mode=MODE_1_0)
        except OSError as exc:
            if self.udp is not None:
                self.udp.server_close()
            raise Unavailable(f"cannot listen for OSC on {addr}: {exc.strerror}; pick another "
                              f"with --osc HOST:PORT") from None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for server in (self.udp, self.tcp):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name="sb-osc", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()

    # -- handlers ----------------------------------------------------------------
    def _master(self, sender, address, *args):
        if not self._allowed(sender):
            return
        try:
            path, lufs, ceiling, out_dir = _expect(args, "sffs", address)
            params = {"lufs": lufs, "ceiling": ceiling}
            self._start_job(sender, "master", {"audio": {"path": path}}, params, out_dir)
        except BridgeError as exc:
            self._error(sender, "", exc)

    def _separate(self, sender, address, *args):
        if not self._allowed(sender):
            return
        try:
            path, model, out_dir = _expect(args, "sss", address)
            self._start_job(sender, "separate", {"audio": {"path": path}}, {}, out_dir, model=model)
        except BridgeError as exc:
            self._error(sender, "", exc)

    def _generate(self, sender, address, *args):
        if not self._allowed(sender):
            return
        try:
            if len(args) < 4 or (len(args) - 4) % 2:
                raise InvalidArgument(f"{address} takes prompt bpm bars out_dir [name value]...; "
                                      f"got {len(args)} arguments")
            prompt, bpm, bars, out_dir = _expect(args[:4], "sffs", address)
            params = {"prompt": prompt}
            if bpm or bars:  # 0 0: a plain duration instead of a tempo lock
                params.update(bpm=bpm, bars=bars)
            inputs, extra, model = self._named("generate", args[4:])
            self._start_job(sender, "generate", inputs, {**params, **extra}, out_dir, model=model)
        except BridgeError as exc:
            self._error(sender, "", exc)

    def _submit(self, sender, address, *args):
        if not self._allowed(sender):
            return
        try:
            if len(args) < 3 or (len(args) - 3) % 2:
                raise InvalidArgument(
                    f"{address} takes engine path out_dir [name value]...; got {len(args)} arguments")
            engine, path, out_dir = (str(a) for a in args[:3])
            inputs, params, model = self._named(engine, args[3:])
            if path:
                inputs.setdefault("audio", {"path": path})
            self._start_job(sender, engine, inputs, params, out_dir, model=model)
        except BridgeError as exc:
            self._error(sender, "", exc)

    def _named(self, engine: str, pairs) -> tuple[dict, dict, str]:
        """(inputs, params, model) from name/value pairs: an engine input's name takes a
        path, "model" picks the model, anything else is a parameter."""
        input_names = {i.name for i in self.service.registry.get(engine).inputs}
        inputs, params, model = {}, {}, ""
        for name, value in zip(pairs[0::2], pairs[1::2]):
            if str(name) in input_names:
                inputs[str(name)] = {"path": str(value)}
            elif str(name) == "model":
                model = str(value)
            else:
                params[str(name)] = value
        return inputs, params, model

    def _reply_port(self, sender, address, *args):
        if not self._allowed(sender):
            return
        if len(args) != 1 or not isinstance(args[0], int) or not 0 < args[0] < 65536:
            self._error(sender, "", InvalidArgument(f"{address} takes one int port (1-65535); got {args!r}"))
            return
        with self._lock:
            self._reply_ports[sender[0]] = args[0]

    def _cancel(self, sender, address, *args):
        if not self._allowed(sender):
            return
        try:
            self.service.cancel(str(args[0]) if args else "")
        except BridgeError as exc:
            self._error(sender, str(args[0]) if args else "", exc)

    def _ping(self, sender, address, *args):
        if self._allowed(sender):
            self._send(sender, "/bridge/pong", [])

    def _unknown(self, sender, address, *args):
        if self._allowed(sender):
            self._error(sender, "", InvalidArgument(
                f"unknown OSC address {address}; known: /bridge/master, /bridge/separate, "
                f"/bridge/generate, /bridge/submit, "
                f"/bridge/reply_port, /bridge/cancel, /bridge/ping"))

    # -- jobs -----------------------------------------------------------------------
    def _start_job(self, sender, engine, inputs, params, out_dir, model: str = "") -> None:
        record = self.service.submit(engine, inputs, params, out_dir, model=model,
                                     client=f"osc:{sender[0]}")
        self._send(sender, "/bridge/job", [record.id, engine])
        threading.Thread(target=self._follow, args=(sender, record.id), name="sb-osc-job",
                         daemon=True).start()

    def _follow(self, sender, job_id: str) -> None:
        last = 0.0
        for _, record in self.service.watch(job_id):
            if record.state is JobState.SUCCEEDED:
                self._send(sender, "/bridge/done", [job_id, *[o["path"] for o in record.outputs]])
            elif record.state.terminal:
                error = record.error or {"code": record.state.value, "message": record.state.value}
                self._send(sender, "/bridge/error", [job_id, error["code"], error["message"]])
            elif record.state is JobState.RUNNING and time.monotonic() - last >= PROGRESS_INTERVAL:
                last = time.monotonic()
                self._send(sender, "/bridge/progress", [job_id, float(record.progress), record.stage])

    # -- replies -----------------------------------------------------------------------
    def _error(self, sender, job_id: str, exc: BridgeError) -> None:
        self._send(sender, "/bridge/error", [job_id, exc.code, exc.message])

    def _send(self, sender, address: str, args: list) -> None:
        with self._lock:
            port = self._reply_ports.get(sender[0], sender[1])
        dgram = build_msg(address, args).dgram
        try:
            self.udp.socket.sendto(dgram, (sender[0], port))
        except OSError as exc:  # the peer went away; the job goes on
            log.info("OSC reply to %s:%s failed: %s", sender[0], port, exc)

    def _allowed(self, sender) -> bool:
        if is_loopback(sender[0]) or sender[0] in self.allow:
            return True
        log.warning("OSC message from %s dropped: not loopback and not in --osc-allow", sender[0])
        return False


class _TcpServer(ThreadingOSCTCPServer):
    """OSC 1.0 over TCP whose stop does not wait for peers to hang up.

    socketserver joins every connection's thread on close, and a controller
    that keeps its connection open would block a graceful stop forever; so
    threads are daemons and ``server_close`` shuts the open connections.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args, **kwargs):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes the handler's recv
            except OSError:
                pass


def _expect(args: tuple, types: str, address: str) -> list:
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
                                  f"{'a number' if kind == 'f' else 'a string'}; got {value!r}")
    return out
