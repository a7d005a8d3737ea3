"""Daemon configuration and default endpoints.

Defaults keep everything local: a unix socket in the user's runtime dir
(mode 0600) and 127.0.0.1 for gRPC and OSC. TCP always needs the token
(``bridge.core.state``): loopback is no boundary between users of one machine.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidArgument, PermissionDenied

DEFAULT_GRPC_PORT = 50551
DEFAULT_OSC_PORT = 50552
ENV_ADDR = "STUDIO_BRIDGE_ADDR"
ENV_TOKEN = "STUDIO_BRIDGE_TOKEN"
ENV_TOKEN_FILE = "STUDIO_BRIDGE_TOKEN_FILE"


def state_dir_default() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "studio-bridge"


def socket_default() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "studio-bridge.sock"
    return state_dir_default() / "studio-bridge.sock"


def osc_socket_default() -> str:
    """The OSC unix socket's default path, beside the gRPC socket ("" on Windows: no unix datagrams)."""
    if os.name == "nt":
        return ""
    return str(socket_default().with_name("studio-bridge.osc"))


def default_addr() -> str:
    """Where clients look when neither --addr nor STUDIO_BRIDGE_ADDR is set."""
    return f"unix://{socket_default()}"


@dataclass
class Config:
    """Everything `studio-bridge serve` can be told.

    ``grpc``/``osc`` are ``HOST:PORT`` (port 0 picks a free one) or "" for off;
    ``socket`` is a path or "" for off.
    """

    state_dir: Path = field(default_factory=state_dir_default)
    media_roots: list[Path] = field(default_factory=lambda: [Path.home()])
    grpc: str = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    socket: str = field(default_factory=lambda: str(socket_default()))
    osc: str = f"127.0.0.1:{DEFAULT_OSC_PORT}"
    osc_allow: list[str] = field(default_factory=list)
    # OSC over a unix datagram socket (mode 0600: the file mode is the guard), or "" for off.
    osc_socket: str = field(default_factory=osc_socket_default)
    # Serve every loopback UDP/TCP OSC sender without looking up whose socket it is.
    osc_trust_loopback: bool = False
    token: str = ""  # "" = the daemon's own, made at first start in <state_dir>/token
    token_file: Path | None = None  # where the token lives (written to daemon.json)
    keep_alive: float = 300.0
    memory_budget: int | None = None
    preload: list[str] = field(default_factory=list)
    queue_capacity: int = 16
    dsp_workers: int = 2
    cache_bytes: int = 4 << 30
    # Results of jobs with no out_dir (remote hosts download them) are kept this long.
    output_retention: float = 24 * 3600.0

    def check(self) -> None:
        """Refuse unsafe endpoints before anything binds.

        gRPC needs no check here: TCP always requires the token (the daemon's
        own when none is given), loopback or not.

        Raises:
            PermissionDenied: non-loopback OSC with no --osc-allow list.
            InvalidArgument: a malformed HOST:PORT.
        """
        for label, addr in (("--grpc", self.grpc), ("--osc", self.osc)):
            if addr:
                split_host_port(addr, label)
        if self.osc and not is_loopback(split_host_port(self.osc, "--osc")[0]) and not self.osc_allow:
            raise PermissionDenied(
                f"--osc {self.osc} is not loopback and OSC carries no token; list the "
                f"peers allowed to send with --osc-allow HOST (repeatable)"
            )

    @property
    def outputs_dir(self) -> Path:
        """Where jobs with no out_dir (remote hosts) write their results."""
        return self.state_dir / "outputs"


def split_host_port(addr: str, label: str = "address") -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(f"{label} '{addr}' is not HOST:PORT (e.g. 127.0.0.1:{DEFAULT_GRPC_PORT})")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False
