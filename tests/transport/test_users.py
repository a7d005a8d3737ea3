"""Another local user against the daemon: every door it might try, refused.

The daemon runs as this test's user (root here); the other user is ``nobody``,
reached with ``setpriv``. What nobody runs is what any user has: the system
python3 (stdlib only) and a copy of the static grpcurl binary, in a folder
it may read. Each test also shows the owner getting through the same door,
so a refusal is a refusal and not a broken setup.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import DaemonProc, write_tone

SETPRIV = shutil.which("setpriv")
GRPCURL = Path(sys.executable).parent / "grpcurl"
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user"),
    pytest.mark.skipif(not SETPRIV, reason="setpriv (util-linux) is not installed"),
]
NOBODY = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]
SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- stand-in\n"


def as_nobody(*cmd: str, timeout: float = 30, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([SETPRIV, *NOBODY, *cmd], capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, cwd="/", input=stdin)


def nobody_python(code: str, stdin: str = "") -> subprocess.CompletedProcess:
    return as_nobody("/usr/bin/python3", "-c", code, stdin=stdin)


def bridge_protoset(folder: Path) -> Path:
    """bridge.v1 as a protoset: the caller needs no reflection (which wants the token too)."""
    from google.protobuf import descriptor_pb2

    from bridge.v1 import bridge_pb2

    files = descriptor_pb2.FileDescriptorSet()
    for dependency in bridge_pb2.DESCRIPTOR.dependencies:
        dependency.CopyToProto(files.file.add())
    bridge_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    path = folder / "bridge.protoset"
    path.write_bytes(files.SerializeToString())
    return path


@pytest.fixture(scope="module")
def shared():
    """A daemon whose media root other users can traverse, holding the owner's 0600 key."""
    base = Path(tempfile.mkdtemp(prefix="sbu-"))
    os.chmod(base, 0o755)  # as a home folder on Debian is: others may look inside
    media = base / "home"
    media.mkdir(mode=0o755)
    os.chmod(media, 0o755)
    key = media / "id_ed25519"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    song = write_tone(media / "song.wav", seconds=2.0)
    os.chmod(song, 0o644)
    tools = base / "tools"
    tools.mkdir(mode=0o755)
    os.chmod(tools, 0o755)
    grpcurl = tools / "grpcurl"
    if GRPCURL.exists():
        shutil.copy(GRPCURL, grpcurl)
        os.chmod(grpcurl, 0o755)
    protoset = bridge_protoset(tools)
    os.chmod(protoset, 0o644)
    (base / "state").mkdir()
    proc = DaemonProc(media=media, state_dir=base / "state", socket=str(base / "s.sock")).start()
    proc.key, proc.song, proc.grpcurl, proc.protoset = key, song, grpcurl, protoset
    yield proc
    proc.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_the_key_is_really_private(shared):
    """The ground: nobody cannot read the key itself."""
    read = nobody_python(f"open({str(shared.key)!r}, 'rb').read()")
    assert read.returncode != 0 and "PermissionError" in read.stderr


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl is not installed")
def test_download_over_loopback_tcp_needs_the_token(shared):
    """The hole found on main: loopback TCP without a token served the owner's key."""
    def download(path: Path, *headers: str) -> list[str]:
        return [str(shared.grpcurl), "-plaintext", "-protoset", str(shared.protoset), *headers,
                "-d", json.dumps({"path": str(path)}), shared.tcp, "bridge.v1.Bridge/Download"]

    stolen = as_nobody(*download(shared.key))
    assert stolen.returncode != 0, stolen.stdout
    assert "Unauthenticated" in stolen.stderr, stolen.stderr
    assert "stand-in" not in stolen.stdout and "LS0t" not in stolen.stdout  # nor in base64
    guessed = as_nobody(*download(shared.key, "-H", "authorization: Bearer guess"))
    assert guessed.returncode != 0 and "Unauthenticated" in guessed.stderr
    # The owner, with the token: the same call is served (the door works; the key is the token).
    owner = subprocess.run(download(shared.song, "-H", f"authorization: Bearer {shared.token}"),
                           capture_output=True, text=True, timeout=30)
    assert owner.returncode == 0, owner.stderr
    assert json.loads(owner.stdout.split("\n}\n")[0] + "\n}").get("data")


def test_the_unix_socket_refuses_other_users(shared):
    connect = nobody_python(
        "import socket; s = socket.socket(socket.AF_UNIX); "
        f"s.connect({shared.socket!r})")
    assert connect.returncode != 0 and "PermissionError" in connect.stderr, connect.stderr
    assert stat.S_IMODE(os.stat(shared.socket).st_mode) == 0o600


def test_the_state_folder_and_token_are_private(shared):
    state = shared.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    listing = nobody_python(f"import os; os.listdir({str(state)!r})")
    assert listing.returncode != 0 and "PermissionError" in listing.stderr
    for name in ("token", "jobs.sqlite3", "daemon.json"):
        read = nobody_python(f"open({str(state / name)!r}, 'rb').read()")
        assert read.returncode != 0 and "PermissionError" in read.stderr, name
    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink():
            assert mode & 0o077 == 0, (path, oct(mode))


def test_the_token_is_not_on_any_command_line(shared):
    token = shared.token
    # nobody can read every process's command line: the daemon's must not hold the token.
    scan = nobody_python(  # the token comes on stdin: the scanner's own argv must not hold it
        "import os, sys\n"
        "token = sys.stdin.read().encode()\n"
        "hits = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try: data = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "    except OSError: continue\n"
        "    if token in data: hits.append(pid)\n"
        "print(len(hits))\n", stdin=token)
    assert scan.returncode == 0, scan.stderr
    assert scan.stdout.strip() == "0"
    env = nobody_python(f"open('/proc/{shared.proc.pid}/environ', 'rb').read()")
    assert env.returncode != 0  # a process's environment is its owner's alone


def test_hidden_files_are_refused_even_to_the_owner(shared):
    from bridge.core.errors import BridgeError

    hidden = shared.media / ".ssh"
    hidden.mkdir(exist_ok=True)
    write_tone(hidden / "x.wav", seconds=1.0)
    with shared.client() as owner:
        with pytest.raises(BridgeError) as info:
            owner.download(str(hidden / "x.wav"), shared.media / "copy.wav")
        assert info.value.code == "permission_denied" and "hidden" in info.value.message
        with pytest.raises(BridgeError) as info:
            owner.submit("master", {"audio": str(shared.song)}, {}, str(hidden / "out"))
        assert info.value.code == "permission_denied" and "'.ssh'" in info.value.message
    assert not (hidden / "out").exists() and not (shared.media / "copy.wav").exists()


def test_the_own_token_goes_only_to_the_own_listener(tmp_path, monkeypatch):
    """Found in review: the client sent the owner's token to whatever listened on the port
    (another user who took it while the daemon was down would collect it)."""
    import socket

    from bridge import client as client_module
    from bridge.core import state

    monkeypatch.delenv("STUDIO_BRIDGE_TOKEN", raising=False)
    monkeypatch.delenv("STUDIO_BRIDGE_TOKEN_FILE", raising=False)
    monkeypatch.setattr(client_module, "state_dir_default", lambda: tmp_path)
    (tmp_path / "token").write_text("the-owners-token\n")
    mine = socket.socket()
    mine.bind(("127.0.0.1", 0))
    mine.listen()
    port = mine.getsockname()[1]
    (tmp_path / "daemon.json").write_text(json.dumps({"grpc": f"127.0.0.1:{port}"}))
    assert client_module.find_token(f"127.0.0.1:{port}") == "the-owners-token"
    assert client_module.find_token(f"unix://{tmp_path}/s.sock") == ""  # the socket needs none
    assert client_module.find_token("127.0.0.1:1") == ""  # not the daemon's address
    mine.close()
    theirs = subprocess.Popen([SETPRIV, *NOBODY, "/usr/bin/python3", "-c",
                               "import socket, time; s = socket.socket(); "
                               "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                               f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert theirs.stdout.readline().strip() == "up"
        assert state.listener_is_mine(port) is False
        assert client_module.find_token(f"127.0.0.1:{port}") == ""
    finally:
        theirs.kill()
        theirs.wait()
