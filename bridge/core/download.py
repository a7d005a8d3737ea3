"""Fetching model files for `studio-bridge models pull`: resumable, verified.

A transfer goes to ``<file>.part`` in a cache folder that survives an
interrupted pull; the next pull asks the server for the rest (HTTP Range) and
continues. A file is accepted only when its SHA-256 matches what the model's
source publishes. Only the store's pull uses this; jobs never download.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .engine import RemoteFile
from .errors import InvalidArgument, Unavailable

CHUNK = 1 << 20
TIMEOUT = 60.0


def fetch(remote: RemoteFile, partial_dir: Path, dest: Path,
          progress: Callable[[int, int], None] | None = None) -> Path:
    """Download ``remote`` to ``dest``, resuming a previous ``.part`` if any.

    Args:
        remote: URL, file name and published checksum prefix.
        partial_dir: where unfinished transfers are kept between attempts.
        dest: final path (its folder is created if missing).
        progress: called with (bytes so far, total or 0).

    Raises:
        Unavailable: the source cannot be reached or breaks off (run pull again to resume).
        InvalidArgument: the finished file's checksum does not match (it is deleted).
    """
    partial_dir.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Keyed by URL: two models' files may share a name (state_dict.bin) and must not
    # resume from each other.
    key = hashlib.sha256(remote.url.encode()).hexdigest()[:16]
    part = partial_dir / f"{key}-{Path(remote.filename).name}.part"
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(remote.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            total = have + int(response.headers.get("Content-Length") or 0)
            _copy(response, part, have, total, progress)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the .part is already whole
            pass
        else:
            raise Unavailable(f"cannot download {remote.url}: HTTP {exc.code} {exc.reason}; check the "
                              f"model name and your connection, then run the pull again") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"download of {remote.url} broke off after {_size(part)} bytes ({reason}); "
                          f"run the same pull again to resume") from None
    _verify(part, remote)
    os.replace(part, dest)
    return dest


def _copy(response, part: Path, have: int, total: int, progress) -> None:
    with open(part, "ab" if have else "wb") as handle:
        done = have
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            handle.write(block)
            done += len(block)
            if progress:
                progress(done, total)
    if total and done < total:
        raise OSError(f"connection closed at {done} of {total} bytes")


def _verify(part: Path, remote: RemoteFile) -> None:
    if remote.sha256_prefix:
        actual, expected = _digest(part, hashlib.sha256()), remote.sha256_prefix.lower()
    elif remote.git_sha1:  # git's blob id: sha1 of "blob <size>\0" + content
        actual = _digest(part, hashlib.sha1(f"blob {_size(part)}\0".encode()))
        expected = remote.git_sha1.lower()
    else:
        return
    if not actual.startswith(expected):
        part.unlink()
        raise InvalidArgument(f"{remote.filename} from {remote.url} has checksum {actual[:16]}..., "
                              f"expected {expected[:16]}...; the file was deleted; the source "
                              f"or the transfer is corrupt: run the pull again")


def _digest(path: Path, digest) -> str:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
