"""demucs models on disk: loading a repo folder, demucs's own model list, staging imports.

A demucs "repo" is a folder with ``<name>.yaml`` (the members of the model or
bag) and ``<sig>-<first 8 hex of sha256>.th`` packages; demucs checks the hash
in each name on load. The ``separate`` engine keeps every installed demucs
model in that layout in the model store.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..core.errors import InvalidArgument, Unavailable
from ..core.media import sha256_file

NO_DEMUCS = ("demucs is not installed; install the extra: pip install 'studio-bridge[separate]' "
              "(model 'hpss' works without it)")


def load_demucs(name: str, folder) -> Any:
    """``demucs.pretrained.get_model(name, repo=folder)`` with its failures made clear.

    demucs reports some problems with ``fatal()`` (print + ``sys.exit``): that
    SystemExit is caught here and never reaches the daemon.

    Raises:
        Unavailable: demucs missing, or the files are damaged, incomplete,
            not a demucs model, or need a package that is not installed.
        MemoryError / torch.cuda.OutOfMemoryError: passed through, so the
            residency manager can evict and retry.
    """
    folder = Path(folder)
    try:
        from demucs.pretrained import get_model
    except ImportError as exc:
        raise Unavailable(f"{NO_DEMUCS} ({exc})") from None
    said = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(said):
            warnings.simplefilter("ignore")
            return get_model(name, repo=folder)
    except SystemExit:
        reason = said.getvalue().strip() or "demucs gave up loading it"
    except MemoryError:
        raise
    except Exception as exc:
        if "OutOfMemory" in type(exc).__name__:
            raise
        reason = f"{type(exc).__name__}: {exc}"
    raise Unavailable(
        f"model '{name}' in {folder} cannot be loaded: {reason}. Its files are damaged, "
        f"incomplete or not a demucs model (or need a missing package); reinstall it with "
        f"`studio-bridge models pull {name}`, or remove it (`studio-bridge models remove {name}`) "
        f"and import it again (`studio-bridge models import PATH --name {name}`)")


def facts(model) -> dict:
    """Sources, rate, channels, segment and bag size of a loaded demucs model."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    members = list(model.models) if isinstance(model, BagOfModels) else [model]
    segments = [float(m.segment) for m in members if getattr(m, "segment", None)]
    transformer = [float(m.segment) for m in members if isinstance(m, HTDemucs)]
    return {"sources": list(model.sources), "samplerate": int(model.samplerate),
            "audio_channels": int(model.audio_channels), "members": len(members),
            "segment": max(segments) if segments else 10.0,
            "max_segment": min(transformer) if transformer else math.inf,
            "klass": type(members[0]).__name__}


def remote_dir() -> Path | None:
    """demucs's own model list, found without importing demucs (or torch)."""
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "remote"
    return folder if folder.is_dir() else None


def remote_files(path: Path) -> dict[str, tuple[str, str]]:
    """demucs/remote/files.txt: signature -> (root folder, file name)."""
    root, files = "", {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            files[line.split("-", 1)[0]] = (root, line)
    return files


_HASHED = re.compile(r"^(?P<sig>.+)-(?P<hash>[0-9a-f]{8})$")


def stage_package(source: Path, name: str, staged: Path) -> None:
    """One ``.th``: name it ``<sig>-<sha8>.th`` and write ``<name>.yaml``."""
    digest = sha256_file(source)
    match = _HASHED.match(source.stem)
    if match and not digest.startswith(match["hash"]):
        raise InvalidArgument(f"'{source}' is damaged: its name says sha256 {match['hash']}... "
                              f"but its content hashes to {digest[:8]}...; download it again")
    sig = re.sub(r"[^A-Za-z0-9_]", "_", match["sig"] if match else source.stem)
    shutil.copyfile(source, staged / f"{sig}-{digest[:8]}.th")
    (staged / f"{name}.yaml").write_text(f"models: ['{sig}']\n")


def stage_folder(source: Path, name: str, staged: Path) -> None:
    """A demucs repo folder: the yaml for ``name`` and the .th files it lists."""
    yamls = sorted(source.glob("*.yaml"))
    packages = sorted(source.glob("*.th"))
    chosen = source / f"{name}.yaml"
    if not chosen.is_file():
        if len(yamls) > 1:
            raise InvalidArgument(f"'{source}' holds several demucs models "
                                  f"({', '.join(p.stem for p in yamls)}); pass --name with one")
        if not yamls:
            if len(packages) == 1:
                return stage_package(packages[0], name, staged)
            raise InvalidArgument(f"'{source}' is not a demucs repo folder: it has no <name>.yaml "
                                  f"and {len(packages)} .th files (need a yaml, or exactly one .th)")
        chosen = yamls[0]
    import yaml

    try:
        bag = yaml.safe_load(chosen.read_text())
        sigs = [str(s) for s in bag["models"]]
    except Exception as exc:  # malformed yaml or no 'models' list
        raise InvalidArgument(f"'{chosen}' is not a demucs model list: {exc}") from None
    by_sig = {p.stem.rsplit("-", 1)[0] if "-" in p.stem else p.stem: p for p in packages}
    missing = [s for s in sigs if s not in by_sig]
    if missing:
        raise InvalidArgument(f"'{chosen}' lists {', '.join(missing)} but '{source}' has no "
                              f"such .th file; copy the whole folder")
    for sig in sigs:
        shutil.copyfile(by_sig[sig], staged / by_sig[sig].name)
    shutil.copyfile(chosen, staged / f"{name}.yaml")
