"""The daemon: one Service behind the gRPC and OSC transports.

``Daemon.start`` refuses unsafe endpoints, builds the service, binds every
transport (port 0 picks a free port, as tests do), preloads models, and
writes ``<state_dir>/daemon.json`` with the bound endpoints so clients and
scripts can find it. ``stop(grace)`` drains in-flight RPCs for ``grace``
seconds, stops the workers and unloads every model.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

from .core.config import Config
from .core.service import Service

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: Config, registry=None, residency=None):
        self.config = config
        self._registry, self._residency = registry, residency
        self.service: Service | None = None
        self.grpc = None
        self.osc = None
        self._stopped = threading.Event()

    def start(self) -> "Daemon":
        """Bind everything and start serving; returns self."""
        from .transport.grpc_server import GrpcServers

        self._token()
        self.config.check()
        # Weights are never fetched while a job runs: a library that would look
        # one up on a hub must fail at once instead of hanging.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        started = time.monotonic()
        self.service = Service(self.config, self._registry, self._residency)
        try:
            self.grpc = GrpcServers(self.service, self.config.grpc, self.config.socket,
                                    self.config.token, token_file=str(self.config.token_file or ""))
            if self.config.osc or self.config.osc_socket:
                from .transport.osc_server import OscServer

                self.osc = OscServer(self.service, self.config.osc, self.config.osc_allow,
                                     socket_path=self.config.osc_socket,
                                     trust_loopback=self.config.osc_trust_loopback)
        except BaseException:
            if self.grpc:
                self.grpc.stop(0)
            self.service.close()
            raise
        self.grpc.start()
        if self.osc:
            self.osc.start()
        self.service.preload()
        self.service.warm_up()
        self._write_info()
        log.info("serving in %.3f s: %s", time.monotonic() - started, self.endpoints())
        return self

    def _token(self) -> None:
        """TCP always needs a token: the one given, else the daemon's own (made once, 0600)."""
        from .core.state import daemon_token, private_dir

        if not self.config.token:
            private_dir(self.config.state_dir)
            self.config.token, self.config.token_file = daemon_token(self.config.state_dir)

    def endpoints(self) -> dict:
        host = self.config.grpc.rpartition(":")[0] if self.config.grpc else ""
        osc_host = self.config.osc.rpartition(":")[0] if self.config.osc else ""
        return {
            "pid": os.getpid(),
            "grpc": f"{host}:{self.grpc.tcp_port}" if self.config.grpc else "",
            "socket": f"unix://{self.config.socket}" if self.config.socket else "",
            "osc": f"{osc_host}:{self.osc.port}" if self.osc and self.config.osc else "",
            "osc_socket": self.config.osc_socket if self.osc else "",
            "state_dir": str(self.config.state_dir),
            "token_file": str(self.config.token_file or ""),
        }

    def _write_info(self) -> None:
        from .core.state import write_private

        write_private(self.config.state_dir / "daemon.json", json.dumps(self.endpoints(), indent=2))

    def stop(self, grace: float = 5.0) -> None:
        """Stop jobs first, then the transports, then unload models.

        Jobs end (``interrupted``) before the servers close, so a client
        watching one hears how it ended instead of a dropped stream; RPCs in
        flight then get up to ``grace`` seconds.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.service:
            self.service.stop_jobs(timeout=grace)
        if self.osc:
            self.osc.stop()
        if self.grpc:
            self.grpc.stop(grace)
        if self.service:
            self.service.close(timeout=grace)
        info = self.config.state_dir / "daemon.json"
        if info.exists():
            info.unlink()

    def serve_forever(self, grace: float = 5.0) -> None:
        """Block until SIGTERM or SIGINT, then stop gracefully."""
        wake = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: wake.set())
        while not wake.wait(1.0):
            pass
        log.info("stopping (grace %.1f s)", grace)
        self.stop(grace)
