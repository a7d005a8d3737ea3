"""Media I/O: decode inputs to arrays, guard the media roots, write atomically.

Engines see only ``Audio`` arrays. This module is the one place that touches
users' files: reading (soundfile for WAV/FLAC/AIFF/OGG/MP3, PyAV for the
rest), checking that paths lie under the configured media roots, and
writing outputs through a temporary file renamed into place, so a crash or
a cancel never leaves a half-written file in a user's folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from . import paths
from .engine import Audio
from .errors import InvalidArgument, MediaError, PermissionDenied
from .publish import Publication
from .scratch import Scratch

MAX_CHANNELS = 8
BLOCK_FRAMES = 1 << 16  # frames per read/write/check step on long files
# The sample formats a host may ask for; value = soundfile (format, subtype).
OUTPUT_FORMATS = {
    "wav16": ("WAV", "PCM_16", ".wav"),
    "wav24": ("WAV", "PCM_24", ".wav"),
    "float": ("WAV", "FLOAT", ".wav"),
    "flac16": ("FLAC", "PCM_16", ".flac"),
    "flac24": ("FLAC", "PCM_24", ".flac"),
}
_SOUNDFILE_SUFFIXES = {".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3", ".w64", ".rf64", ".caf"}


def read_audio(path: str | os.PathLike, scratch: Scratch | None = None, handle=None) -> Audio:
    """Decode an audio file into float32 frames x channels.

    Args:
        path: the file.
        scratch: where a long file's samples go (a disk-backed array) instead
            of RAM; None decodes into memory.
        handle: the file, already open (``paths.open_regular``); default: ``path``
            is opened here, pinned.

    Raises:
        NotFound: the file does not exist.
        InvalidArgument: it is not a regular file (a folder, a FIFO, ...).
        MediaError: empty, corrupt, not audio, NaN/Inf samples, > 8 channels.
    """
    path = Path(path)
    if handle is None:
        with paths.open_regular(path) as handle:
            return read_audio(path, scratch, handle)
    if os.fstat(handle.fileno()).st_size == 0:
        raise MediaError(f"input file '{path}' is empty (0 bytes); export the clip again")
    handle.seek(0)
    audio = _decode(path, handle, scratch or Scratch())
    audio.name = path.stem
    check_audio(audio, str(path))
    return audio


def check_audio(audio: Audio, label: str) -> None:
    """Reject audio no engine can work on, naming exactly what is wrong."""
    if audio.frames == 0:
        raise MediaError(f"'{label}' holds no audio frames; export the clip again")
    if audio.channels > MAX_CHANNELS:
        raise MediaError(
            f"'{label}' has {audio.channels} channels; at most {MAX_CHANNELS} are "
            f"supported; split it into stems or fold it down first"
        )
    import numpy as np

    for start in range(0, audio.frames, BLOCK_FRAMES):  # blockwise: the file may be on disk
        finite = np.isfinite(audio.samples[start:start + BLOCK_FRAMES])
        if not finite.all():
            frame = start + int(np.argwhere(~finite)[0][0])
            raise MediaError(
                f"'{label}' contains NaN or infinite samples (first at frame {frame}, "
                f"{frame / audio.sample_rate:.3f} s); render it again from the source"
            )


def _decode(path: Path, source, scratch: Scratch) -> Audio:
    """Decode the open file ``source``; ``path`` names it (and its suffix picks the decoder)."""
    if path.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            return _decode_soundfile(path, source, scratch)
        except MediaError:
            if path.suffix.lower() not in (".mp3", ".ogg"):
                raise
            source.seek(0)
    return _decode_av(path, source, scratch)


def _decode_soundfile(path: Path, source, scratch: Scratch) -> Audio:
    import soundfile

    try:
        with soundfile.SoundFile(source) as handle:
            samples = _read_blocks(handle, scratch)
            subtype = handle.subtype
            rate = handle.samplerate
            header = handle.extra_info
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        # str(exc) repeats the path; and when no decoder recognises the bytes,
        # libsndfile says "File does not exist", which is false here.
        reason = getattr(exc, "error_string", "") or str(exc)
        if "does not exist" in reason:
            reason = "format not recognised."
        raise MediaError(
            f"cannot decode '{path}': {reason.rstrip('.')}; the file is corrupt, truncated or not "
            f"audio (readable: WAV, FLAC, AIFF, OGG, MP3, M4A)"
        ) from None
    audio = Audio(samples, int(rate), subtype=subtype)
    audio.warnings.extend(_truncation(path, header, audio))
    return audio


def _read_blocks(handle, scratch: Scratch):
    """All frames, read block by block into a (possibly disk-backed) array."""
    out = scratch.array(handle.frames, handle.channels)
    done = 0
    while done < out.shape[0]:
        got = handle.read(min(BLOCK_FRAMES, out.shape[0] - done), dtype="float32",
                          always_2d=True, out=out[done:done + BLOCK_FRAMES])
        if len(got) == 0:  # a header that promises more than the file holds
            break
        done += len(got)
    return out[:done]


# libsndfile's header log: "data : 288000 (should be 143978)" when the file ends early.
_SHORT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation(path: Path, header: str, audio: Audio) -> list[str]:
    """A warning when the header promises more audio than the file holds.

    libsndfile reads what is there (as ffmpeg and sox do); the producer
    should still hear that the export was cut short.
    """
    match = _SHORT_CHUNK.search(header or "")
    if not match or int(match.group(2)) <= 0:
        return []
    declared = audio.duration * int(match.group(1)) / int(match.group(2))
    return [f"'{path}' is truncated: its header declares {declared:.2f} s of audio but the file "
            f"holds {audio.duration:.2f} s; the result covers only that; export the clip again "
            f"for the whole of it"]


def _decode_av(path: Path, source, scratch: Scratch) -> Audio:
    import av

    try:
        with av.open(source) as container:
            if not container.streams.audio:
                raise MediaError(f"'{path}' has no audio stream; pick an audio or video file with sound")
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels
            spool = scratch.spool(channels)
            for frame in container.decode(stream):
                spool.append(_frames_of(frame, channels))
            rate = stream.codec_context.sample_rate
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError, OSError) as exc:
        raise MediaError(
            f"cannot decode '{path}': {_av_reason(exc)}; the file is corrupt, truncated or not "
            f"audio (readable: WAV, FLAC, AIFF, OGG, MP3, M4A)"
        ) from None
    if not spool.frames:
        raise MediaError(f"'{path}' decodes to no audio frames; export the clip again")
    return Audio(spool.array(), int(rate), subtype="")


def _av_reason(exc: Exception) -> str:
    """FFmpeg's words without "[Errno 1094995529]" or the path repeated."""
    reason = getattr(exc, "strerror", None) or str(exc)
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(reason)).split(": '")[0]
    return reason.rstrip(".").lower() or type(exc).__name__


def _frames_of(frame, channels: int):
    """One decoded PyAV frame as float32 (frames, channels)."""
    import numpy as np

    data = frame.to_ndarray()
    data = data.reshape(channels, -1).T if frame.format.is_planar else data.reshape(-1, channels)
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    return data.astype(np.float32, copy=False)


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it can be written.

    Raises:
        PermissionDenied: it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".sb-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    return folder


def check_writable_dir(folder: str | os.PathLike) -> Path:
    """Prove ``folder`` can be written, creating nothing that is not there.

    A job checks its output folder when submitted but creates it only when it
    writes, so a job that fails leaves no empty folder behind.

    Raises:
        PermissionDenied: it, or the nearest existing folder above it, is not
            a writable folder.
    """
    folder = Path(folder)
    try:
        if folder.exists():
            return ensure_writable_dir(folder)
        existing = next(p for p in folder.parents if p.exists())
    except OSError as exc:  # a name too long, a folder we may not look into
        raise PermissionDenied(f"cannot write to output folder '{folder}': "
                               f"{paths.os_reason(exc)}; choose another (--out DIR)") from None
    if not existing.is_dir():
        raise _unwritable(folder, NotADirectoryError(f"'{existing}' is not a folder"))
    return ensure_writable_dir(existing) and folder


def _unwritable(folder: Path, exc: OSError) -> PermissionDenied:
    # "File exists" / "Not a directory" alone do not say which path is the file.
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    reason = f"'{blocker}' is a file, not a folder" if blocker else (exc.strerror or str(exc))
    return PermissionDenied(
        f"cannot write to output folder '{folder}': {reason}; "
        f"choose a folder you can write to (--out DIR)"
    )


def write_audio_atomic(folder: Path, name: str, audio: Audio, fmt: str = "wav24", tag: str = "") -> Path:
    """Write ``audio`` into ``folder`` as ``name`` (or a numbered free name).

    The data goes to a temp file in the same folder first and is then linked
    into place, so readers see either nothing or the whole file, and an
    existing file is never replaced.
    """
    return _publish_one(folder, tag, lambda pub: stage_audio(pub, name, "audio", audio, fmt))


def stage_audio(publication: Publication, name: str, kind: str, audio: Audio, fmt: str,
                check=None):
    """Stage ``audio`` in ``publication`` as ``fmt``; ``check()`` runs between blocks
    (a job's cancel check: a long write stops when the job is told to)."""
    container, subtype, _ = OUTPUT_FORMATS[fmt]
    return publication.stage(name, kind, lambda handle: _write_blocks(handle, audio, container,
                                                                     subtype, check))


def _write_blocks(handle, audio: Audio, container: str, subtype: str, check=None) -> None:
    """Block by block, so a long (disk-backed) result is never copied whole."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)  # seeded: the same result is byte-identical (cache)
    with soundfile.SoundFile(handle, "w", audio.sample_rate, audio.channels, subtype=subtype,
                             format=container) as out:
        for start in range(0, audio.frames, BLOCK_FRAMES):
            if check is not None:
                check()
            block = audio.samples[start:start + BLOCK_FRAMES]
            out.write(_dither_16(block, rng) if subtype == "PCM_16" else block)


def _dither_16(samples, rng):
    """TPDF dither at 16 bits: truncation distortion becomes benign noise."""
    lsb = 1.0 / 32768.0
    noise = (rng.random(samples.shape) - rng.random(samples.shape)) * lsb
    return (samples + noise).astype(samples.dtype, copy=False)


def write_bytes_atomic(folder: Path, name: str, data: bytes, tag: str = "") -> Path:
    """Write raw bytes into ``folder`` like ``write_audio_atomic``."""
    return _publish_one(folder, tag, lambda pub: pub.stage(name, "data", lambda h: h.write(data)))


def copy_file_atomic(src: Path, folder: Path, name: str, tag: str = "", move: bool = False) -> Path:
    """Copy ``src`` into ``folder`` like ``write_audio_atomic`` (``move``: rename a scratch file)."""
    return _publish_one(folder, tag, lambda pub: pub.stage_file(src, name, "file", move))


def _publish_one(folder: Path, tag: str, stage) -> Path:
    publication = Publication(Path(folder), tag or "x")
    try:
        stage(publication)
        [path] = publication.commit()
        return path
    finally:
        publication.discard()


def output_name(clip: str, engine: str, kind: str, suffix: str) -> str:
    """``<clip>.<engine>.<kind><suffix>`` with unsafe characters replaced."""
    parts = [_safe(clip) or "clip", _safe(engine), _safe(kind)]
    return ".".join(parts) + suffix


def _safe(text: str) -> str:
    return re.sub(r"[^\w\-]+", "_", text).strip("_")


def check_format(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise InvalidArgument(f"output format '{fmt}' is unknown; allowed: {', '.join(OUTPUT_FORMATS)}")
    return fmt


class FileHasher:
    """SHA-256 of files, remembered while the file provably has not changed.

    The cache key is the content, so a file rewritten in place must be hashed
    again even if its size and mtime were put back: the memo is keyed by
    (device, inode, size, mtime, ctime), and ctime cannot be set back by a
    user. Timestamps are coarse (a clock tick, or 2 s on FAT), so a file
    changed within ``RACY_SECONDS`` of being hashed is not remembered at all
    (git's "racily clean" rule): the next ask reads it again.
    """

    RACY_SECONDS = 2.0
    MAX_ENTRIES = 4096

    def __init__(self):
        self._known: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def hash(self, path: str | os.PathLike) -> str:
        with open(path, "rb") as handle:
            return self.hash_open(handle)

    def hash_open(self, handle) -> str:
        """The digest of an open file (read from its start; left at its start)."""
        before = os.fstat(handle.fileno())
        key = _identity(before)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            handle.seek(0)
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            known = digest.hexdigest()
            if _identity(os.fstat(handle.fileno())) == key and \
                    time.time() - before.st_ctime > self.RACY_SECONDS:
                self._remember(key, known)
        handle.seek(0)
        return known

    def _remember(self, key: tuple, digest: str) -> None:
        with self._lock:
            if len(self._known) >= self.MAX_ENTRIES:
                self._known.pop(next(iter(self._known)))
            self._known[key] = digest


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
