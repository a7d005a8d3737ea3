"""Installing models into the store: `models pull` and `models import`.

The engine says what a model is made of (``pull_plan``) or how to take a
local checkpoint in (``import_model``); this module fetches or copies into a
staging folder and hands it to the store, which adds it atomically.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Callable

from .download import fetch
from .errors import InvalidArgument, NotFound
from .media import sha256_file
from .store import ModelEntry, ModelStore, check_name


def pull(store: ModelStore, registry, name: str, replace: bool = False,
         progress: Callable[[str, int, int], None] | None = None) -> ModelEntry:
    """Fetch catalogue model ``name`` from its official source into the store.

    Args:
        progress: called with (file name, bytes so far, total or 0).

    Raises:
        NotFound: no engine offers ``name``; the message lists what can be pulled.
        Unavailable: the source is unreachable (a rerun resumes).
        InvalidArgument: a checksum mismatch, or already installed.
    """
    check_name(name)
    engine = _engine_offering(registry, name)
    if store.get(name) and not replace:
        raise InvalidArgument(f"model '{name}' is already installed; `studio-bridge models remove "
                              f"{name}` first to pull it again")
    plan = engine.pull_plan(name)
    staged = store.staging()
    try:
        for remote in plan.files:
            report = (lambda done, total, f=remote.filename: progress(f, done, total)) if progress else None
            fetch(remote, store.root / ".partial", staged / remote.filename, report)
        for filename, data in plan.extra.items():
            (staged / filename).write_bytes(data)
        entry = ModelEntry(name=name, engine=engine.name, version=_version(staged), size_bytes=0,
                           licence=plan.licence, description=plan.description,
                           source=plan.files[0].url if plan.files else "", files=_files(staged))
        return store.add(staged, entry, replace=replace)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def import_path(store: ModelStore, registry, source: str | Path, name: str | None = None,
                engine_name: str | None = None) -> ModelEntry:
    """Register a local checkpoint or model folder under ``name``.

    Raises:
        NotFound: ``source`` does not exist.
        InvalidArgument: no model engine recognises it (each engine's reason is given).
    """
    source = Path(source).expanduser().absolute()
    if not source.exists():
        raise NotFound(f"'{source}' does not exist; give a checkpoint file or a model folder")
    name = check_name(name or source.stem)
    candidates = [registry.get(engine_name)] if engine_name else \
        [e for _, e, _ in registry.describe() if e is not None and e.kind.value == "model"]
    reasons = []
    for engine in candidates:
        staged = store.staging()
        try:
            meta = engine.import_model(source, name, staged)
        except InvalidArgument as exc:
            shutil.rmtree(staged, ignore_errors=True)
            reasons.append(f"{engine.name}: {exc.message}")
            continue
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        entry = ModelEntry(name=name, engine=engine.name, version=meta.get("version") or _version(staged),
                           size_bytes=0, licence=meta.get("licence", ""),
                           description=meta.get("description", ""), source=f"import:{source}",
                           files=_files(staged))
        return store.add(staged, entry)
    raise InvalidArgument(f"no engine can import '{source}': " + ("; ".join(reasons) or "no model engine is "
                          "installed (see `studio-bridge engines`)"))


def _engine_offering(registry, name: str):
    offered = {}
    for _, engine, _ in registry.describe():
        for model in (engine.catalogue() if engine else []):
            offered[model] = engine
    if name not in offered:
        raise NotFound(f"no engine offers a model '{name}' to pull; can be pulled: "
                       f"{', '.join(sorted(offered)) or 'none'}; for your own weights use "
                       f"`studio-bridge models import PATH --name N`")
    return offered[name]


def _files(folder: Path) -> list[dict]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = sha256_file(path)
        out.append({"name": str(path.relative_to(folder)), "size": path.stat().st_size, "sha256": digest})
    return out


def _version(folder: Path) -> str:
    """A short id of the model's content: changes whenever any file does."""
    digest = hashlib.sha256()
    for item in _files(folder):
        digest.update(f"{item['name']}:{item['sha256']}\n".encode())
    return digest.hexdigest()[:12]
