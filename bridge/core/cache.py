"""Content-addressed result cache.

Key = SHA-256 over the inputs' content hashes, the engine and its version,
the model and its version, and the validated parameters. Asking twice for the
same thing copies the stored result into the requested folder at once.
Entries live under ``<state_dir>/cache/<key>/`` and are pruned oldest-first
past a size limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from . import paths


def cache_key(engine: str, engine_version: str, model: str, model_version: str,
              input_hashes: dict[str, str], params: dict) -> str:
    """Stable key for one request; params must be JSON-serialisable."""
    blob = json.dumps(
        {
            "engine": [engine, engine_version],
            "model": [model, model_version],
            "inputs": input_hashes,
            "params": params,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultCache:
    """Stores finished outputs by key; copies them out on a hit.

    Args:
        root: the cache folder.
        max_bytes: total size kept; older entries are removed past it.
    """

    def __init__(self, root: str | Path, max_bytes: int = 4 << 30):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        for leftover in self.root.glob(".put-*"):  # a daemon killed mid-put
            shutil.rmtree(leftover, ignore_errors=True)

    def get(self, key: str) -> dict | None:
        """Return the entry's meta ({outputs: [{kind, file, ...}], report}) or None."""
        meta_path = self.root / key / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        if not all((self.root / key / o["file"]).is_file() for o in meta["outputs"]):
            return None
        os.utime(meta_path)  # mark as recently used for pruning
        return meta

    def file(self, key: str, name: str) -> Path:
        return self.root / key / name

    def put(self, key: str, outputs: list[dict], report: dict, clip: str = "",
            sources: list | None = None) -> None:
        """Copy finished output files into the cache under ``key``.

        ``outputs`` items carry ``path`` and ``kind``; the entry appears whole
        or not at all (built in a temp folder, then renamed). ``clip`` names
        the outputs when no input clip does (a prompt's slug). ``sources``:
        one callable per output opening its bytes (the job's staged files, read
        through the pinned folder); default: each ``path``, opened pinned.
        """
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".put-"))
        try:
            entries = []
            for index, out in enumerate(outputs):
                name = f"{index}-{Path(out['path']).name}"
                # Never the name in the host's folder: a file swapped in there after the
                # link must not be served to the next request for the same thing.
                opener = sources[index] if sources else (lambda p=Path(out["path"]): paths.open_regular(p))
                with opener() as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                entries.append({**{k: v for k, v in out.items() if k != "path"}, "file": name,
                                "name": Path(out["path"]).name})
            (tmp / "meta.json").write_text(json.dumps({"outputs": entries, "report": report,
                                                       "clip": clip, "stored_at": time.time()}))
            with self._lock:
                target = self.root / key
                if target.exists():
                    shutil.rmtree(tmp)
                    return
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()

    def _prune(self) -> None:
        with self._lock:
            entries = []
            for entry in self.root.iterdir():
                meta = entry / "meta.json"
                if entry.name.startswith(".") or not meta.exists():
                    continue
                size = sum(f.stat().st_size for f in entry.iterdir())
                entries.append((meta.stat().st_mtime, size, entry))
            total = sum(size for _, size, _ in entries)
            for _, size, entry in sorted(entries):
                if total <= self.max_bytes:
                    break
                shutil.rmtree(entry, ignore_errors=True)
                total -= size
