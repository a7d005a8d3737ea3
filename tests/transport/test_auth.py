"""Who may talk to the daemon: the token on TCP, the socket's file mode, the media roots."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.client import Client
from bridge.core.errors import BridgeError
from tests.conftest import ROOT, DaemonProc, write_tone

TOKEN = "secret"
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def serve(tmp: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run `serve` expecting it to refuse (it exits instead of serving)."""
    (tmp / "state").mkdir(exist_ok=True)
    (tmp / "media").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "STUDIO_BRIDGE_TOKEN"}
    cmd = [sys.executable, "-m", "bridge", "serve", "--socket", str(tmp / "s.sock"),
           "--state-dir", str(tmp / "state"), "--media-root", str(tmp / "media"), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def error_of(call) -> BridgeError:
    with pytest.raises(BridgeError) as info:
        call()
    return info.value


@pytest.fixture
def token_daemon(media_dir, monkeypatch):
    """A daemon listening on all interfaces, protected by a token."""
    monkeypatch.setenv("STUDIO_BRIDGE_TOKEN", TOKEN)  # the environment: never argv
    media = media_dir / "media"
    media.mkdir()
    (media_dir / "state").mkdir()
    proc = DaemonProc(media=media, state_dir=media_dir / "state", socket=str(media_dir / "s.sock"),
                      extra=["--grpc", "0.0.0.0:0"])
    proc.start()
    monkeypatch.delenv("STUDIO_BRIDGE_TOKEN")  # clients below choose what they send
    proc.loopback = "127.0.0.1:" + proc.tcp.rpartition(":")[2]
    yield proc
    proc.stop()


# -- refusing to start ------------------------------------------------------------------
def test_tcp_always_needs_a_token_the_daemon_makes_itself(media_dir, monkeypatch):
    """No token given: the daemon makes one (0600, in its state dir) and TCP requires it,
    loopback included; the owner's client finds it by itself, nobody types it."""
    monkeypatch.delenv("STUDIO_BRIDGE_TOKEN", raising=False)
    (media_dir / "media").mkdir()
    (media_dir / "state").mkdir()
    proc = DaemonProc(media=media_dir / "media", state_dir=media_dir / "state",
                      socket=str(media_dir / "s.sock"), extra=["--grpc", "0.0.0.0:0"]).start()
    try:
        token_file = media_dir / "state" / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((media_dir / "state").stat().st_mode) == 0o700
        assert json.loads((media_dir / "state" / "daemon.json").read_text())["token_file"] == str(token_file)
        token = token_file.read_text().strip()
        assert len(token) >= 32
        loopback = "127.0.0.1:" + proc.tcp.rpartition(":")[2]
        with Client(loopback, token="") as anonymous:
            assert error_of(anonymous.status).code == "unauthenticated"
        with Client(loopback, token=token) as owner:
            assert owner.status()["device"]
        monkeypatch.setenv("STUDIO_BRIDGE_TOKEN_FILE", str(token_file))
        with Client(loopback) as found:  # the token file named in the environment
            assert found.status()["device"]
        cmdline = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline
    finally:
        proc.stop()
    # The same token at the next start: clients configured once keep working.
    again = DaemonProc(media=media_dir / "media", state_dir=media_dir / "state",
                       socket=str(media_dir / "s.sock")).start()
    try:
        assert again.token == token
    finally:
        again.stop()


def test_token_on_the_command_line_is_refused(media_dir):
    result = serve(media_dir, "--token", TOKEN)
    assert result.returncode == 2
    assert "/proc" in result.stderr and "STUDIO_BRIDGE_TOKEN" in result.stderr and "--token-file" in result.stderr
    assert TOKEN not in result.stderr and "Traceback" not in result.stderr
    assert not (media_dir / "s.sock").exists()


def test_public_osc_without_allow_list_refuses_to_start(media_dir):
    result = serve(media_dir, "--grpc", "127.0.0.1:0", "--osc", "0.0.0.0:0")
    assert result.returncode != 0
    assert "--osc-allow" in result.stdout + result.stderr


# -- the token ----------------------------------------------------------------------------
def test_token_required_on_tcp(token_daemon):
    assert token_daemon.alive()
    assert token_daemon.tcp.startswith("0.0.0.0:")

    for token in ("", "wrong", TOKEN + "x"):
        with Client(token_daemon.loopback, token=token) as anonymous:
            exc = error_of(anonymous.status)
            assert exc.code == "unauthenticated", (token, exc.code, exc.message)
            assert "token" in exc.message
            # streaming methods are guarded too
            assert error_of(lambda: list(anonymous.watch("x"))).code == "unauthenticated"
            assert error_of(anonymous.engines).code == "unauthenticated"
            assert error_of(lambda: anonymous.upload(__file__)).code == "unauthenticated"
            assert error_of(lambda: anonymous.download(
                str(token_daemon.media / "x.wav"), token_daemon.media / "y.wav")).code == "unauthenticated"

    with Client(token_daemon.loopback, token=TOKEN) as client:
        assert client.status()["version"]
        assert any(e["name"] == "master" for e in client.engines())
        song = write_tone(token_daemon.media / "tok.wav", 4.0, 48000, 2)
        job = client.run("master", {"audio": str(song)}, {"preset": "streaming"},
                         str(token_daemon.media / "out"))
        assert job["state"] == "succeeded", job
        assert Path(job["outputs"][0]["path"]).is_file()


def test_health_needs_no_token(token_daemon):
    with Client(token_daemon.loopback, token="") as anonymous:
        assert anonymous.health() == "SERVING"


def health_protoset(folder: Path) -> Path:
    """grpc.health.v1 as a protoset, from the descriptor the health package ships."""
    from google.protobuf import descriptor_pb2
    from grpc_health.v1 import health_pb2

    files = descriptor_pb2.FileDescriptorSet()
    health_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    path = folder / "health.protoset"
    path.write_bytes(files.SerializeToString())
    return path


@pytest.mark.skipif(not Path(GRPCURL).exists(), reason="grpcurl is not installed")
def test_grpcurl_with_and_without_token(token_daemon, media_dir):
    addr = token_daemon.loopback
    # Reflection is guarded by the token too, so an anonymous grpcurl brings the schema itself.
    health = subprocess.run([GRPCURL, "-plaintext", "-protoset", str(health_protoset(media_dir)),
                             "-d", '{"service":""}', addr, "grpc.health.v1.Health/Check"],
                            capture_output=True, text=True, timeout=30)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"

    denied = subprocess.run([GRPCURL, "-plaintext", "-d", "{}", addr,
                             "bridge.v1.Bridge/Status"], capture_output=True, text=True, timeout=30)
    assert denied.returncode != 0
    assert "Unauthenticated" in denied.stdout + denied.stderr

    allowed = subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: Bearer {TOKEN}", "-d", "{}",
                              addr, "bridge.v1.Bridge/Status"], capture_output=True, text=True, timeout=30)
    assert allowed.returncode == 0, allowed.stderr
    status = json.loads(allowed.stdout)
    assert status.get("queue_capacity", status.get("queueCapacity")) == 16  # serve's default --queue
    assert status["media_roots"] == [str(token_daemon.media.resolve())]


def test_unix_socket_is_private_and_needs_no_token(token_daemon):
    sock = Path(token_daemon.socket)
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert mode == 0o600, oct(mode)
    with Client(token_daemon.addr, token="") as local:
        assert local.health() == "SERVING"
        assert local.status()["queue_capacity"] > 0


def test_default_daemon_socket_mode(daemon):
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600


# -- media roots -----------------------------------------------------------------------------
def test_paths_outside_media_roots_are_refused(token_daemon, media_dir):
    root = str(token_daemon.media.resolve())
    outside = write_tone(media_dir / "outside.wav", 2.0, 48000, 2)  # a real file, beside the root
    inside = write_tone(token_daemon.media / "inside.wav", 2.0, 48000, 2)
    link = token_daemon.media / "link.wav"
    link.symlink_to(outside)  # inside by name, outside in fact

    with Client(token_daemon.addr) as client:
        cases = {
            "input outside": lambda: client.submit("master", {"audio": str(outside)}, {},
                                                   str(token_daemon.media / "out")),
            "symlink to outside": lambda: client.submit("master", {"audio": str(link)}, {},
                                                        str(token_daemon.media / "out")),
            "out_dir outside": lambda: client.submit("master", {"audio": str(inside)}, {},
                                                     str(media_dir / "elsewhere")),
            "download outside": lambda: client.download(str(outside), media_dir / "copy.wav"),
            "reference outside": lambda: client.submit(
                "master", {"audio": str(inside), "reference": "/etc/hostname"}, {},
                str(token_daemon.media / "out")),
        }
        for label, call in cases.items():
            exc = error_of(call)
            assert exc.code == "permission_denied", (label, exc.code, exc.message)
            assert root in exc.message, (label, exc.message)  # names the roots
            assert "--media-root" in exc.message, (label, exc.message)  # and what to do
        assert not (media_dir / "elsewhere").exists()
        assert not (media_dir / "copy.wav").exists()
        assert client.list_jobs() == []  # nothing refused became a job

    # over TCP with the token, the same rule holds
    with Client(token_daemon.loopback, token=TOKEN) as remote:
        exc = error_of(lambda: remote.submit("master", {"audio": str(outside)}, {},
                                             str(token_daemon.media / "out")))
        assert exc.code == "permission_denied" and root in exc.message
