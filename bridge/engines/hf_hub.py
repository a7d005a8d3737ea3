"""Files of a model repository on the Hugging Face hub, with the checksums it publishes.

MusicGen's weights and the T5 text encoder they need live on the hub. Its
listing (``/api/models/<repo>/tree/main``) gives each file's size, the sha256 of
large (LFS) files and the git blob id of small ones; ``models pull`` downloads
``/<repo>/resolve/main/<path>`` and checks each file against them. Read only by
``models pull``, never while a job runs. ``STUDIO_BRIDGE_HF_URL`` points it at
another server (tests use one on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from ..core.engine import RemoteFile
from ..core.errors import InvalidArgument, Unavailable

URL_ENV = "STUDIO_BRIDGE_HF_URL"
DEFAULT_URL = "https://huggingface.co"
TIMEOUT = 30.0


def base_url() -> str:
    return (os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def remote_files(repo: str, paths: list[str], into: str = "") -> list[RemoteFile]:
    """``paths`` of ``repo`` as downloads checked against the hub's listing.

    Args:
        repo: e.g. "facebook/musicgen-small".
        paths: files to fetch; each must be in the listing.
        into: a sub-folder of the model's folder to put them in.

    Raises:
        Unavailable: the hub cannot be reached.
        InvalidArgument: a file is not in the repository.
    """
    listing = _listing(repo)
    files = []
    for path in paths:
        entry = listing.get(path)
        if entry is None:
            raise InvalidArgument(f"{repo} on {base_url()} has no file '{path}'; it has: "
                                  f"{', '.join(sorted(listing)) or 'nothing'}")
        lfs = entry.get("lfs") or {}
        files.append(RemoteFile(
            url=f"{base_url()}/{repo}/resolve/main/{path}",
            filename=f"{into}/{path}" if into else path,
            sha256_prefix=lfs.get("oid", "") if lfs else "",
            git_sha1="" if lfs else entry.get("oid", ""),
            size=int(entry.get("size") or 0)))
    return files


def _listing(repo: str) -> dict[str, dict]:
    url = f"{base_url()}/api/models/{repo}/tree/main"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            entries = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"cannot list {repo} at {url}: HTTP {exc.code} {exc.reason}; check the "
                          f"model name and your connection") from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"cannot list {repo} at {url}: {getattr(exc, 'reason', exc)}; "
                          f"check your connection (models are pulled from the hub)") from None
    return {e["path"]: e for e in entries if e.get("type") == "file"}
