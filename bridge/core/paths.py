"""Which paths the daemon may touch, and opening them without following a swapped link.

The daemon runs as its owner and acts for whoever reaches it, so every path a
request names is checked here: absolute, free of NUL bytes, under a media
root after links are resolved, not hidden (a path part starting with ``.``,
such as ``~/.ssh``) unless that hidden folder is itself a root, and never
inside the daemon's own state folder. Checking a path and then opening it by
name leaves a window in which a folder can be swapped for a link, so files
are opened (and folders created) one component at a time from ``/`` with
``O_NOFOLLOW``: what is opened is exactly what was checked, or the open fails.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterable

from .errors import InvalidArgument, NotFound, PermissionDenied

# Windows has no dir_fd; there paths are opened by name (checked, not pinned).
PINNED = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)  # O_PATH needs only search permission
_O_DIR = getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class MediaRoots:
    """The folders the daemon may read from and write to.

    Args:
        roots: folders; each is resolved (symlinks followed) once.
        private: folders no request may reach (the state dir), unless through
            a root inside them (the daemon's own outputs folder).
    """

    def __init__(self, roots: Iterable[str | os.PathLike], private: Iterable[str | os.PathLike] = ()):
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.private = [Path(p).expanduser().resolve() for p in private]
        # By identity too: on a case-insensitive disk (macOS) ~/SBState and ~/sbstate are one.
        self._private_ids = {_identity(p): p for p in self.private if _identity(p)}

    def check(self, path: str | os.PathLike, purpose: str = "read") -> Path:
        """Return the resolved path if a request may ``purpose`` it.

        Raises:
            InvalidArgument: a relative path, a NUL byte, a symlink loop, a
                name the filesystem cannot hold.
            PermissionDenied: outside the roots, hidden, or the state folder.
        """
        resolved = resolve(path, purpose)
        root = self._root_of(resolved)
        if root is None:
            raise PermissionDenied(
                f"cannot {purpose} '{path}': it is outside the daemon's media roots "
                f"({', '.join(map(str, self.roots)) or 'none configured'}); move the file "
                f"under one of them or start the daemon with --media-root <folder>")
        hidden = next((part for part in resolved.relative_to(root).parts if part.startswith(".")), None)
        if hidden is not None:
            raise PermissionDenied(
                f"cannot {purpose} '{path}': '{hidden}' is hidden, and hidden files and folders "
                f"under a media root are off limits (they hold keys and settings); move the media "
                f"to a visible folder, or make that folder a root with --media-root")
        if self._in_private(resolved, root):
            raise PermissionDenied(
                f"cannot {purpose} '{path}': it is inside the daemon's own state folder; "
                f"pick a file or folder of your own")
        return resolved

    def _in_private(self, resolved: Path, root: Path) -> bool:
        """Inside a private folder, unless the root itself is inside it (the outputs folder)."""
        for folder in (resolved, *resolved.parents):
            private = self._private_ids.get(_identity(folder)) or \
                next((p for p in self.private if p == folder), None)
            if private is not None and not _inside(root, private):
                return True
            if folder == root:
                return False  # the root's own ancestors are the user's business
        return False

    def _root_of(self, resolved: Path) -> Path | None:
        """The deepest root holding ``resolved`` (None when none does)."""
        holding = [r for r in self.roots if r == resolved or r in resolved.parents]
        return max(holding, key=lambda r: len(r.parts), default=None)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def inside(path: Path, folder: Path) -> bool:
    """Whether resolved ``path`` is ``folder`` or below it (both resolved here)."""
    return _inside(Path(path).resolve(), Path(folder).resolve())


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def resolve(path: str | os.PathLike, purpose: str = "read") -> Path:
    """The absolute, link-free form of a path a request names.

    Raises:
        InvalidArgument: relative, NUL byte, symlink loop, name too long.
    """
    text = os.fspath(path)
    if "\x00" in text:
        raise InvalidArgument(f"cannot {purpose} {text!r}: the path contains a NUL byte; "
                              f"give the file's real path")
    expanded = Path(text).expanduser()
    if len(os.fsencode(text)) > 4000 or any(len(os.fsencode(part)) > 255 for part in expanded.parts):
        raise InvalidArgument(f"cannot {purpose} '{text[:120]}...': it is longer than "
                              f"filesystems allow (255 bytes a name, 4096 a path); shorten it")
    if not expanded.is_absolute():
        raise InvalidArgument(
            f"cannot {purpose} '{text}': it is a relative path and the daemon does not share "
            f"your working folder; give an absolute path (the studio-bridge CLI makes it absolute)")
    try:
        return expanded.resolve()
    except RuntimeError:  # Python 3.11 reports a symlink loop this way
        raise InvalidArgument(f"cannot {purpose} '{text}': its symbolic links form a loop; "
                              f"fix the link or give the file's real path") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot {purpose} '{text}': {os_reason(exc)}; check the path") from None


def os_reason(exc: OSError) -> str:
    """A short reason for an OSError, without the errno number or a repeated path."""
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in it is longer than the filesystem allows (255 bytes per name)"
    if exc.errno == errno.ELOOP:
        return "its symbolic links form a loop"
    return (exc.strerror or str(exc)).lower()


# -- pinned opening ------------------------------------------------------------------
def open_dir(path: Path, create: bool = False, mode: int = 0o777) -> int | None:
    """An fd for the folder at resolved ``path``, walked from ``/`` without following links
    (None where the platform has no dir_fd: then it is only created).

    Args:
        path: an absolute, resolved path (from ``MediaRoots.check``).
        create: make missing folders with ``mode`` (set exactly: the daemon's
            own umask is 077, a user's new output folder follows theirs).

    Raises:
        PermissionDenied: a part of it became a link or a file since it was
            checked, or cannot be opened or created.
    """
    if not PINNED:
        if create:
            path.mkdir(parents=True, exist_ok=True, mode=mode)
        return None
    fd = os.open("/", _O_PATH | _O_DIR)
    for part in path.parts[1:]:
        fd = _step(fd, part, create and mode, path)  # closes the fd it was given, even when it raises
    return fd


def _step(parent: int, part: str, mode: int, whole: Path) -> int:
    """Open one component below ``parent`` (closing ``parent``); ``mode``: create it so."""
    try:
        try:
            return os.open(part, _O_PATH | _O_DIR, dir_fd=parent)
        except FileNotFoundError:
            if not mode:
                raise
            try:
                os.mkdir(part, mode, dir_fd=parent)
            except FileExistsError:
                return os.open(part, _O_PATH | _O_DIR, dir_fd=parent)  # made by another job meanwhile
            # mkdir's mode is cut by the umask: set it on what was opened, never through a link.
            made = os.open(part, os.O_RDONLY | _O_DIR, dir_fd=parent)
            os.fchmod(made, mode)
            return made
    except FileNotFoundError:
        raise NotFound(f"folder '{whole}' does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a link" if _is_link(part, parent) else "a file"
            raise PermissionDenied(
                f"cannot write to '{whole}': '{part}' is {what}, not a folder (it changed after "
                f"the job was checked); nothing was written there; choose a folder you can "
                f"write to (--out DIR) and submit again") from None
        raise PermissionDenied(f"cannot open folder '{whole}': {os_reason(exc)}") from None
    finally:
        os.close(parent)


def _is_link(name: str, parent: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_regular(path: Path):
    """Open the resolved file ``path`` for reading, pinned, refusing non-regular files.

    Returns:
        A binary file object.

    Raises:
        NotFound: it does not exist.
        InvalidArgument: it is a folder, FIFO, socket or device.
        PermissionDenied: it became a link since it was checked, or is unreadable.
    """
    folder = open_dir(path.parent) if PINNED else None
    try:
        kind = _kind(os.stat(path.name, dir_fd=folder, follow_symlinks=False) if PINNED else os.stat(path))
        if kind:
            raise InvalidArgument(f"input '{path}' is {kind}, not a regular file; give an audio or "
                                  f"video file (WAV, FLAC, AIFF, OGG, MP3, M4A, MP4, MOV, ...)")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
            | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path.name, flags, dir_fd=folder) if PINNED else \
            os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise NotFound(f"input file '{path}' does not exist; check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermissionDenied(f"input '{path}' became a link after it was checked; "
                                   f"submit it again") from None
        raise PermissionDenied(f"cannot read '{path}': {os_reason(exc)}") from None
    finally:
        if folder is not None:
            os.close(folder)
    if _kind(os.fstat(fd)):  # swapped between the stat and the open
        os.close(fd)
        raise InvalidArgument(f"input '{path}' is not a regular file; give an audio or video file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _kind(st: os.stat_result) -> str:
    """'' for a regular file, else what it is, in words."""
    mode = st.st_mode
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return words
    return "" if stat.S_ISREG(mode) else "not a regular file"


def input_problem(path: Path) -> str:
    """Why ``path`` (resolved) cannot be an input, in words; '' if it can."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist; check the path"
    except OSError as exc:
        return f"cannot be read: {os_reason(exc)}"
    kind = _kind(st)
    if kind == "a folder":
        return ("is a folder, not a file; give one audio file (WAV, FLAC, AIFF, OGG, MP3, M4A) "
                "from inside it")
    if kind:
        return f"is {kind}, not a regular file; give an audio or video file"
    return ""
