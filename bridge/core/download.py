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
        dest: final path (its folder must exist).
        progress: called with (bytes so far, total or 0).

    Raises:
        Unavailable: the source cannot be reached or breaks off (run pull again to resume).
        InvalidArgument: the finished file's checksum does not match (it is deleted).
    """
    partial_dir.mkdir(parents=True, exist_ok=True)
    part = partial_dir / f"{remote.filename}.part"
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
    if not remote.sha256_prefix:
        return
    digest = hashlib.sha256()
    with open(part, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if not actual.startswith(remote.sha256_prefix.lower()):
        part.unlink()
        raise InvalidArgument(f"{remote.filename} from {remote.url} has checksum {actual[:16]}..., "
                              f"expected {remote.sha256_prefix}...; the file was deleted; the source "
                              f"or the transfer is corrupt: run the pull again")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
