"""The model store: which weights are installed, where, and how they got there.

Models live in ``<state_dir>/models/<name>/`` (a folder in the layout its
library loads from, e.g. a demucs repo folder) with ``store.json`` holding
the index. Adding is atomic: a model's folder is built beside the store and
renamed in, so a crashed pull or import never leaves a half-installed model.
Nothing here downloads while a job runs; ``bridge.core.download`` is used
only by `studio-bridge models pull`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InvalidArgument, NotFound

SCHEMA = "ModelStore.1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class ModelEntry:
    """One installed model."""

    name: str
    engine: str
    version: str  # content-derived (checksums): enters the result-cache key
    size_bytes: int
    licence: str = ""
    source: str = ""  # URL it was pulled from, or "import:<path>"
    description: str = ""
    installed_at: float = field(default_factory=time.time)
    files: list[dict] = field(default_factory=list)  # {name, size, sha256}


class ModelStore:
    """Installed models under ``root`` (normally ``<state_dir>/models``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for leftover in self.root.glob(".add-*"):  # a pull or import that was killed
            shutil.rmtree(leftover, ignore_errors=True)

    # -- reading ---------------------------------------------------------------
    def entries(self, engine: str | None = None) -> list[ModelEntry]:
        """Installed models (of one engine, if given), by name."""
        index = self._read()
        return [ModelEntry(**e) for _, e in sorted(index.items())
                if engine is None or e["engine"] == engine]

    def get(self, name: str) -> ModelEntry | None:
        entry = self._read().get(name)
        return ModelEntry(**entry) if entry else None

    def path(self, name: str) -> Path:
        """The folder holding ``name``'s files.

        Raises:
            NotFound: not installed; the message names what is and how to get it.
        """
        if self.get(name) is None or not (self.root / name).is_dir():
            installed = ", ".join(e.name for e in self.entries()) or "none"
            raise NotFound(f"model '{name}' is not installed; installed: {installed}; get it with "
                           f"`studio-bridge models pull {name}` or `studio-bridge models import PATH "
                           f"--name {name}`")
        return self.root / name

    # -- changing -----------------------------------------------------------------
    def staging(self) -> Path:
        """A fresh folder beside the store to build a model in (then ``add`` it)."""
        return Path(tempfile.mkdtemp(dir=self.root, prefix=".add-"))

    def add(self, staged: Path, entry: ModelEntry, replace: bool = False) -> ModelEntry:
        """Move a staged folder in as ``entry.name`` and record it.

        Raises:
            InvalidArgument: a bad name, or the name is taken and not ``replace``.
        """
        check_name(entry.name)
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        entry.size_bytes = sum(p.stat().st_size for p in files)
        with self._lock:
            index = self._read()
            target = self.root / entry.name
            if entry.name in index and not replace:
                shutil.rmtree(staged, ignore_errors=True)
                raise InvalidArgument(f"a model named '{entry.name}' is already installed; remove it "
                                      f"first (`studio-bridge models remove {entry.name}`) or pick "
                                      f"another --name")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged, target)
            index[entry.name] = asdict(entry)
            self._write(index)
        return entry

    def remove(self, name: str) -> ModelEntry:
        """Uninstall ``name`` (its files and its index entry)."""
        with self._lock:
            index = self._read()
            if name not in index:
                installed = ", ".join(sorted(index)) or "none"
                raise NotFound(f"model '{name}' is not installed; installed: {installed}")
            entry = ModelEntry(**index.pop(name))
            self._write(index)
        shutil.rmtree(self.root / name, ignore_errors=True)
        return entry

    # -- the index file ---------------------------------------------------------------
    def _read(self) -> dict:
        try:
            data = json.loads((self.root / "store.json").read_text())
        except FileNotFoundError:
            return {}
        return data.get("models", {})

    def _write(self, index: dict) -> None:
        tmp = self.root / ".store.json.part"
        tmp.write_text(json.dumps({"schema": SCHEMA, "models": index}, indent=2))
        os.replace(tmp, self.root / "store.json")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidArgument(f"model name '{name}' is not allowed; use letters, digits, '.', '_' "
                              f"and '-' (at most 64), starting with a letter or digit")
    return name
