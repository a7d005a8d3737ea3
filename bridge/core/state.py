"""The daemon's state folder is private, and so is the token inside it.

The state folder holds job records (with every path a host sent), cached
results, uploads and the daemon's token: mode 0700, its files 0600. The token
is what a TCP client must show (``authorization: Bearer``); by default the
daemon makes one at first start in ``<state-dir>/token`` and the local client
reads it from there by itself, as Jupyter does, so the owner never types it
and no other user can read it. It is never put on a command line, where
``/proc/<pid>/cmdline`` shows it to everyone.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from .errors import InvalidArgument, PermissionDenied

log = logging.getLogger(__name__)
TOKEN_FILE = "token"


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or tighten it to 0700 if others could enter it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.info("state folder %s was mode %o; now %o (private)", path, mode, mode & 0o700)
    except OSError as exc:
        raise PermissionDenied(f"cannot use state folder '{path}': {exc.strerror or exc}; "
                               f"pick another with --state-dir") from None
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from its first byte."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_token(path: str | os.PathLike) -> str:
    """The token in ``path`` (first line, stripped).

    Raises:
        InvalidArgument: the file is missing, empty or unreadable.
    """
    try:
        token = Path(path).expanduser().read_text().strip().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the token file '{path}': {exc.strerror or exc}") from None
    if not token or not token[0].strip():
        raise InvalidArgument(f"the token file '{path}' is empty; put the token on its first line")
    return token[0].strip()


def daemon_token(state_dir: Path) -> tuple[str, Path]:
    """The token in ``<state_dir>/token``, made (0600) at first start; (token, path)."""
    path = Path(state_dir) / TOKEN_FILE
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("token file %s was readable by others (mode %o); now 0600", path, mode)
        return read_token(path), path
    write_private(path, secrets.token_urlsafe(32) + "\n")
    return read_token(path), path


def listener_is_mine(port: int) -> bool | None:
    """Whether every socket listening on TCP ``port`` is this user's (None: cannot tell).

    Read from /proc/net/tcp{,6} (Linux): a listening socket whose uid is ours and
    whose inode is live. No listener at all is False.
    """
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    owners = []
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                owners.append((int(fields[7]), int(fields[9])))
    return bool(owners) and all(uid == os.geteuid() and inode != 0 for uid, inode in owners)
