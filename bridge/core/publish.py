"""Putting a job's outputs into the host's folder: all of them, or none.

A separation writes four or six stems; a host that trusts the job's state
must never find half a set. So every output is first written to a hidden
temp file in the output folder (``.<name>.sb-<job>.<random>.part``), and only
when all are complete are they hard-linked to their real names, one after
the other, the temp files staying until the job's record says it succeeded.
A failure while linking removes the links made so far. A crash while
linking leaves the plan in the job record (``publishing``): the next start
removes every real name that is still a link of a planned temp file, then the
temp files, so a job the record calls interrupted has left nothing behind.

The folder is opened once, pinned (``paths.open_dir``), and every file is
made relative to that descriptor, so a folder swapped for a link while the
job ran cannot redirect a single byte.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import paths
from .errors import PermissionDenied

log = logging.getLogger(__name__)
MAX_VERSIONS = 9999

_USER_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


def remember_user_umask() -> int:
    """Read (once) the umask the user started us with: outputs in their folders keep it.

    The daemon then runs with umask 077 for its own files; reading the umask
    means setting it, so it is read once, before any other thread runs.
    """
    global _USER_UMASK
    with _UMASK_LOCK:
        if _USER_UMASK is None:
            _USER_UMASK = os.umask(0o022)
            os.umask(_USER_UMASK)
        return _USER_UMASK


@dataclass
class Staged:
    """One output written to its temp file, waiting to be linked."""

    temp: str  # file name in the folder
    name: str  # the name it should get (a numbered one if taken)
    kind: str
    path: Path | None = None  # its final path, once linked
    size: int = 0  # of the temp file, read through the pinned folder before linking
    sha256: str = ""


_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
    getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


class Publication:
    """The outputs of one job in one folder.

    Args:
        folder: the resolved output folder (``MediaRoots.check``); created,
            pinned, on the first ``stage``.
        tag: the job id, in every temp name, so a restart finds them.
        private: files get mode 0600 (the daemon's own outputs folder)
            instead of 0666 less the user's umask.
    """

    def __init__(self, folder: Path, tag: str, private: bool = False):
        self.folder, self.tag, self.private = Path(folder), tag, private
        self.staged: list[Staged] = []
        self._fd: int | None = None
        self._made = False

    # -- writing ---------------------------------------------------------------
    def stage(self, name: str, kind: str, write: Callable[[object], None]) -> Staged:
        """Create a temp file and let ``write(binary file)`` fill it."""
        staged = Staged(self._temp_name(name), name, kind)
        try:
            handle = os.fdopen(self._open(staged.temp, _WRITE, 0o600), "w+b")
        except OSError as exc:
            raise self._unwritable(exc) from None
        self.staged.append(staged)  # from here discard() removes it, whatever happens
        try:
            with handle:
                write(handle)
                _set_mode(handle.fileno(), self._mode(), self.folder / staged.temp)
        except OSError as exc:
            raise self._unwritable(exc) from None
        return staged

    def stage_file(self, src: Path, name: str, kind: str, move: bool = False) -> Staged:
        """Stage a copy of ``src``; ``move``: it is a scratch file nobody needs after
        this, renamed into place when on the same filesystem (a video can be gigabytes)."""
        if move and paths.PINNED:
            staged = Staged(self._temp_name(name), name, kind)
            try:
                os.chmod(src, self._mode())  # while it is still in the private scratch folder
                os.rename(src, staged.temp, dst_dir_fd=self._dir())
            except OSError:
                pass  # another filesystem: copied below
            else:
                self.staged.append(staged)
                return staged
        with open(src, "rb") as source:
            return self.stage(name, kind, lambda out: shutil.copyfileobj(source, out, 1 << 20))

    def open_staged(self, staged: Staged):
        """A staged file, open for reading through the pinned folder (never by its name)."""
        return os.fdopen(self._open(staged.temp, _READ), "rb")

    def plan(self) -> list[dict]:
        """What a restart needs to undo this publication (kept in the job record):
        each temp file, the name it should get and, once linked, the name it got."""
        return [{"folder": str(self.folder), "temp": s.temp, "name": s.name,
                 **({"final": s.path.name} if s.path else {})} for s in self.staged]

    # -- linking ---------------------------------------------------------------
    def commit(self, linked: Callable[[], None] = lambda: None) -> list[Path]:
        """Link every staged file to a free name; all or none.

        Args:
            linked: called after each link (the job record saves the plan with
                the name taken, so a crash between two links is undone exactly).

        Raises:
            PermissionDenied: a link failed (the ones made are removed).
        """
        try:
            for staged in self.staged:
                staged.size, staged.sha256 = self._fingerprint(staged)
            for staged in self.staged:
                staged.path = self.folder / self._link_free(staged)
                linked()
        except BaseException:
            self._unlink_finals()
            raise
        return [s.path for s in self.staged]

    def discard(self) -> None:
        """Remove the temp files (after success, failure or cancel alike)."""
        for staged in self.staged:
            self._remove(staged.temp)
        self.close()

    def rollback(self) -> None:
        """Undo everything: the links made and the temp files."""
        self._unlink_finals()
        self.discard()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- helpers -----------------------------------------------------------------
    def _dir(self) -> int | None:
        if self._fd is None and not self._made:
            try:
                mode = 0o700 if self.private else 0o777 & ~remember_user_umask()
                self._fd = paths.open_dir(self.folder, create=True, mode=mode)
                self._made = True
            except OSError as exc:
                raise self._unwritable(exc) from None
        return self._fd

    def _temp_name(self, name: str) -> str:
        # The tag (a job id) lets a restarted daemon find what a killed one left.
        return f".{name}.sb-{self.tag}.{secrets.token_hex(4)}.part"

    def _mode(self) -> int:
        return 0o600 if self.private else 0o666 & ~remember_user_umask()

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        fd = self._dir()
        if fd is not None:
            return os.open(name, flags, mode, dir_fd=fd)
        return os.open(self.folder / name, flags, mode)

    def _fingerprint(self, staged: Staged) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        with self.open_staged(staged) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        return size, digest.hexdigest()

    def _link_free(self, staged: Staged) -> str:
        """Link the temp file to the first free name of name, name.2, name.3, ..."""
        for number in range(1, MAX_VERSIONS + 1):
            candidate = version_name(staged.name, number)
            try:
                self._link(staged.temp, candidate)
                return candidate
            except FileExistsError:
                continue
            except OSError as exc:
                raise self._unwritable(exc) from None
        raise PermissionDenied(f"output folder '{self.folder}' already holds {MAX_VERSIONS} "
                               f"versions of '{staged.name}'; clear it")

    def _link(self, temp: str, name: str) -> None:
        try:
            if self._fd is None:
                os.link(self.folder / temp, self.folder / name)  # fails if it exists: no clobbering
            else:
                os.link(temp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd, follow_symlinks=False)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or exc.errno not in _NO_HARD_LINKS:
                raise
            # FAT/exFAT hold no hard links: copy under the name (opened O_EXCL: no clobbering).
            self._copy_within(temp, name)

    def _copy_within(self, temp: str, name: str) -> None:
        with os.fdopen(self._open(temp, _READ), "rb") as src, \
                os.fdopen(self._open(name, _WRITE, self._mode()), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def _unlink_finals(self) -> None:
        for staged in self.staged:
            if staged.path is not None:
                self._remove(staged.path.name)
                staged.path = None

    def _remove(self, name: str) -> None:
        try:
            if self._fd is not None:
                os.unlink(name, dir_fd=self._fd)
            else:
                os.unlink(self.folder / name)
        except OSError:  # gone already, or its folder is; must not mask the real error
            pass

    def _unwritable(self, exc: OSError) -> PermissionDenied:
        return PermissionDenied(f"cannot write to output folder '{self.folder}': "
                                f"{paths.os_reason(exc)}; choose a folder you can write to (--out DIR)")


def _set_mode(fd: int, mode: int, path: Path) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before Python 3.13: by name (there the mode is only read-only or not)
        os.chmod(path, mode)


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK}


def version_name(name: str, number: int) -> str:
    """name for 1, else name with .<number> before its extension (a.wav -> a.2.wav)."""
    if number == 1:
        return name
    base, dot, ext = name.rpartition(".")
    if not dot:
        return f"{name}.{number}"
    return f"{base}.{number}{dot}{ext}"


def repair(plan: list[dict], succeeded: bool) -> tuple[list[Path], bool]:
    """Finish or undo a publication a killed daemon left (from the job record).

    A succeeded job keeps its outputs and loses its temp files. Any other job
    loses the names its plan says it took and every name that is still a hard
    link of a planned temp file (a link made just before the kill), then the
    temp files.

    Returns:
        (paths removed, whether it is done: False while a folder is missing,
        e.g. an unmounted drive, so the plan is kept for the next start).
    """
    removed, done = [], True
    for item in plan:
        folder = Path(item["folder"])
        if not folder.is_dir():
            done = False
            continue
        temp = folder / item["temp"]
        try:
            original = os.stat(temp, follow_symlinks=False)
        except OSError:
            original = None
        if not succeeded:
            removed += _remove_final(folder / item["final"], original) if item.get("final") else []
            removed += _remove_links_of(folder, item["name"], original) if original else []
        if original is not None:
            try:
                os.unlink(temp)
                removed.append(temp)
            except OSError:
                pass
    return removed, done


def _remove_final(path: Path, original: os.stat_result | None) -> list[Path]:
    """A name the plan says the job took: removed if it is still that output (a link of
    the temp file, or - on FAT, where outputs are copies - one of the same size)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return []
    same = original is None or (st.st_dev, st.st_ino) == (original.st_dev, original.st_ino) \
        or st.st_size == original.st_size
    if not same:
        return []
    try:
        os.unlink(path)
    except OSError:
        return []
    log.info("removed %s: its job did not complete", path)
    return [path]


def _remove_links_of(folder: Path, name: str, original: os.stat_result) -> list[Path]:
    base, dot, ext = name.rpartition(".")
    pattern = re.compile(re.escape(base) + r"(\.\d+)?" + re.escape(dot + ext) + "$") if dot else \
        re.compile(re.escape(name) + r"(\.\d+)?$")
    removed = []
    try:
        names = [n for n in os.listdir(folder) if pattern.match(n)]
    except OSError:
        return removed
    for candidate in names:
        path = folder / candidate
        try:
            st = os.stat(path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (original.st_dev, original.st_ino):
                os.unlink(path)
                removed.append(path)
                log.info("removed %s: its job did not complete", path)
        except OSError:
            continue
    return removed


def remove_partials(folder: str | os.PathLike, tag: str) -> list[Path]:
    """Delete temp files a killed job left in ``folder``; returns them."""
    removed = []
    try:
        candidates = list(Path(folder).glob(f".*.sb-{tag}.*.part"))
    except OSError:
        return removed
    for path in candidates:
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed
