"""Content-addressed blob store for media uploaded by remote hosts.

A blob's id is the SHA-256 of its bytes, so uploading the same clip twice
stores it once, and an input's hash for the result cache is its id.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import InvalidArgument, NotFound

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".upload-*"):  # a daemon killed mid-upload
            leftover.unlink(missing_ok=True)

    def put(self, chunks: Iterable[bytes], expected_sha256: str = "") -> tuple[str, int]:
        """Store a stream of byte chunks; returns (sha256 hex, size).

        Raises:
            InvalidArgument: the content does not match ``expected_sha256``.
        """
        known = self.root / expected_sha256.lower() if _HEX64.match(expected_sha256.lower()) else None
        if known is not None and known.is_file():
            return known.name, known.stat().st_size  # stored already: skip the transfer
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            if expected_sha256 and expected_sha256.lower() != sha:
                raise InvalidArgument(
                    f"upload does not match its declared sha256 ({expected_sha256}); got {sha} "
                    f"over {size} bytes; the transfer was corrupted, upload again"
                )
            os.replace(tmp, self.root / sha)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return sha, size

    def path(self, blob: str) -> Path:
        """The file holding ``blob``.

        Raises:
            NotFound: no such blob.
        """
        if not _HEX64.match(blob or ""):
            raise InvalidArgument(f"blob id '{blob}' is not a SHA-256 hex digest (64 hex digits)")
        path = self.root / blob
        if not path.is_file():
            raise NotFound(f"blob {blob} is not stored on this daemon; upload it first (Upload)")
        return path
