"""`studio-bridge serve` refuses endpoints it cannot or must not take, and says why."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import ROOT, running_daemon


def serve(tmp, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bridge", "serve", "--state-dir", str(tmp / "state2"),
           "--media-root", str(tmp), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_taken_grpc_port_is_a_clear_error_not_a_traceback(media_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(media_dir, "--grpc", f"127.0.0.1:{port}", "--socket", str(media_dir / "x.sock"),
                       "--osc", "")
    assert result.returncode == 3
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr and "--grpc" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (media_dir / "x.sock").exists()  # nothing half-started is left behind


def test_taken_osc_port_is_a_clear_error(media_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = serve(media_dir, "--grpc", "", "--socket", str(media_dir / "y.sock"),
                       "--osc", f"127.0.0.1:{port}")
    assert result.returncode == 3 and "cannot listen for OSC" in result.stderr and "--osc" in result.stderr
    assert not (media_dir / "y.sock").exists()


def test_second_daemon_on_a_live_socket_is_refused_and_the_first_keeps_serving(media_dir):
    with running_daemon(media_dir) as first:
        result = serve(media_dir, "--grpc", "", "--osc", "", "--socket", first.socket)
        assert result.returncode == 3 and "a daemon already listens on" in result.stderr
        with first.client() as client:
            assert client.health() == "SERVING"


def test_json_usage_error_for_serve(media_dir):
    result = subprocess.run([sys.executable, "-m", "bridge", "serve", "--keep-alive", "soon", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and '"invalid_argument"' in result.stdout and "soon" in result.stdout
