"""The engine interface: one small contract every capability implements.

An engine works on in-memory arrays. File handling, caching, scheduling and
transports wrap it. The base class owns validation and the run protocol; a
subclass implements only the private hooks ``_run`` (and for model engines
``_load`` / ``_unload``), as mido's ``BasePort.send`` wraps ``_send``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import Cancelled, InvalidArgument

if TYPE_CHECKING:  # numpy is imported by the engines that need it, when they run
    import numpy as np

    from .scratch import Scratch


class EngineKind(str, enum.Enum):
    """How the scheduler runs an engine."""

    MODEL = "model"  # holds a model on a device; one job at a time per device
    DSP = "dsp"  # plain CPU work; runs in a small pool beside model jobs


@dataclass(frozen=True)
class Param:
    """A typed parameter an engine describes about itself.

    Hosts build their controls from these (a slider for ``float`` with
    bounds, a menu for ``choice``) instead of hard-coding them.
    """

    name: str
    type: str  # "float" | "int" | "bool" | "string" | "choice"
    default: Any = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise."""
        if value is None:
            return None
        try:
            if self.type == "float":
                out = float(value)
                if not math.isfinite(out):
                    raise ValueError("not a finite number")
            elif self.type == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("not a whole number")
                out = int(value)
            elif self.type == "bool":
                out = _to_bool(value)
            else:
                out = str(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgument(
                f"parameter '{self.name}' must be a {self.type}; got {_shown(value)} ({exc})"
            ) from None
        self._check_range(out)
        return out

    def _check_range(self, value: Any) -> None:
        if self.type == "choice" and value not in self.choices:
            raise InvalidArgument(
                f"parameter '{self.name}' is {_shown(value)}; allowed: {', '.join(self.choices)}"
            )
        if self.type in ("float", "int"):
            low = self.minimum if self.minimum is not None else -math.inf
            high = self.maximum if self.maximum is not None else math.inf
            if not low <= value <= high:
                raise InvalidArgument(
                    f"parameter '{self.name}' is {value}; allowed range is "
                    f"{self.minimum} to {self.maximum}{(' ' + self.unit) if self.unit else ''}"
                )


def _shown(value: Any, most: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut to ``most`` characters."""
    text = repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."


def _few(names: Sequence[str], most: int = 8) -> str:
    """Names quoted, at most ``most`` of them: an error message stays a sentence."""
    shown = ", ".join(_shown(n, 40) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class InputSpec:
    """A named media input an engine takes (``audio``, ``reference``, ...)."""

    name: str
    kind: str = "audio"
    required: bool = True
    description: str = ""


@dataclass
class Audio:
    """Audio in memory: ``samples`` is float, shape (frames, channels)."""

    samples: np.ndarray
    sample_rate: int
    subtype: str = ""  # the source file's sample format, when known
    name: str = ""  # the source clip's stem, for output names
    warnings: list[str] = field(default_factory=list)  # decode notes for the job's report

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.frames / float(self.sample_rate)


@dataclass
class Output:
    """One result of a run: media to write plus the kind that names it."""

    kind: str  # e.g. "mastered", "vocals"; becomes part of the file name
    audio: Audio | None = None
    data: bytes | None = None  # non-audio results (e.g. keyframes JSON)
    suffix: str = ".wav"
    path: Path | None = None  # a file the engine rendered in its scratch folder (video)


@dataclass
class MediaFile:
    """An input the engine reads itself (``InputSpec`` kind "video"): video is
    decoded frame by frame while it is processed, never held whole."""

    path: Path
    name: str  # the clip's name, for output names
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    outputs: list[Output]
    report: dict = field(default_factory=dict)
    name: str = ""  # names the outputs when no input clip does (e.g. a prompt's slug)


class RunContext:
    """What a running engine may do besides compute: report and check.

    Args:
        progress: called with (fraction 0..1, stage text).
        cancelled: returns True once the client has asked to stop.
        scratch: where the job's big arrays go (``array(frames, channels)``);
            by default everything stays in memory.
    """

    def __init__(
        self,
        progress: Callable[[float, str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        scratch: Scratch | None = None,
    ):
        self._progress = progress or (lambda fraction, stage: None)
        self._cancelled = cancelled or (lambda: False)
        self._last = 0.0
        if scratch is None:
            from .scratch import Scratch

            scratch = Scratch()
        self.scratch = scratch

    def array(self, frames: int, channels: int) -> np.ndarray:
        """A zeroed float32 (frames, channels) array; disk-backed when large."""
        return self.scratch.array(frames, channels)

    def progress(self, fraction: float, stage: str = "") -> None:
        """Report progress; it never goes backwards (passes that revisit work hold it)."""
        self._last = max(self._last, min(max(float(fraction), 0.0), 1.0))
        self._progress(self._last, stage)

    def check(self) -> None:
        """Raise Cancelled if the job was cancelled; call between chunks."""
        if self._cancelled():
            raise Cancelled("job cancelled by the client")


@dataclass
class RemoteFile:
    """One file of a model at its official source."""

    url: str
    filename: str  # where it goes in the model's folder
    sha256_prefix: str = ""  # what the source publishes (demucs: 8 hex digits in the name)
    size: int = 0  # bytes, when known (for progress)
    git_sha1: str = ""  # a git blob id, what a git host publishes for small (non-LFS) files


@dataclass
class PullPlan:
    """What `models pull NAME` fetches and how it is recorded."""

    name: str
    files: list[RemoteFile]
    extra: dict[str, bytes] = field(default_factory=dict)  # small files written as they are
    licence: str = ""
    description: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A model an engine can load; ``version`` enters the result-cache key."""

    name: str
    version: str
    size_bytes: int = 0
    licence: str = ""
    description: str = ""


# Parameters every engine takes; the job runner, not the engine, uses them.
COMMON_PARAMS: tuple[Param, ...] = (
    Param(
        "format",
        "choice",
        "auto",
        "output sample format; auto keeps float sources float and writes 24-bit WAV otherwise",
        choices=("auto", "wav16", "wav24", "float", "flac16", "flac24"),
    ),
)


class Engine:
    """Base class of every engine.

    Subclasses set the class attributes and implement ``_run``; model
    engines also implement ``_load`` and ``_unload`` and list ``models()``.
    """

    name: str = ""
    kind: EngineKind = EngineKind.DSP
    version: str = "1"  # bump when output for the same input changes
    description: str = ""
    params: Sequence[Param] = ()
    inputs: Sequence[InputSpec] = (InputSpec("audio"),)
    common_params: Sequence[Param] = COMMON_PARAMS  # the runner's audio output format

    # The model store (``bridge.core.store.ModelStore``), set by the registry:
    # model engines find installed weights there, never on the network.
    store = None

    # -- description -------------------------------------------------------
    def models(self) -> list[ModelSpec]:
        """Models this engine can load now (installed ones; empty for DSP engines)."""
        return []

    # -- the model store's hooks ---------------------------------------------
    def catalogue(self) -> list[str]:
        """Names `models pull` can fetch for this engine from its official source."""
        return []

    def pull_plan(self, name: str) -> PullPlan:
        """The files that make up catalogue model ``name``."""
        raise InvalidArgument(f"engine '{self.name}' has no model '{name}' to pull")

    def import_model(self, source, name: str, staged) -> dict:
        """Copy a local checkpoint/folder into ``staged`` (a folder) in loadable form.

        Returns:
            {"version", "licence", "description"} for the store's record.

        Raises:
            InvalidArgument / MediaError: ``source`` is not a model of this engine.
        """
        raise InvalidArgument(f"engine '{self.name}' cannot import models")

    def default_model(self) -> str:
        models = self.models()
        return models[0].name if models else ""

    # -- validation --------------------------------------------------------
    def validate(self, params: Mapping[str, Any]) -> dict:
        """Return params with defaults filled in, or raise InvalidArgument."""
        known = {p.name: p for p in self.describe_params()}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidArgument(
                f"engine '{self.name}' has no parameter {_few(unknown)}; "
                f"it takes: {', '.join(known) or 'none'}"
            )
        values = {name: p.coerce(params.get(name, p.default)) for name, p in known.items()}
        return self._validate(values)

    def _validate(self, values: dict) -> dict:
        """Hook: cross-parameter checks and preset expansion."""
        return values

    def check_model_params(self, model: str, values: Mapping[str, Any]) -> None:
        """Check validated params against the model a job will load (at submit,
        so a request the model cannot serve never waits in the queue).

        Raises:
            InvalidArgument: e.g. a stem the model does not make.
        """
        if model:
            self._check_model(model, values)

    def _check_model(self, model: str, values: Mapping[str, Any]) -> None:
        """Hook: what only the chosen model can judge (default: nothing)."""

    def check_inputs(self, names: Sequence[str]) -> None:
        allowed = {spec.name for spec in self.inputs}
        required = {spec.name for spec in self.inputs if spec.required}
        if set(names) - allowed or required - set(names):
            raise InvalidArgument(
                f"engine '{self.name}' takes inputs {sorted(allowed)} "
                f"(required: {sorted(required)}); got {sorted(names)}"
            )

    def describe_params(self) -> tuple[Param, ...]:
        return (*self.params, *self.common_params)

    # -- lifecycle ---------------------------------------------------------
    def load(self, model: str, device: str) -> Any:
        """Load ``model`` onto ``device`` and return a handle to it."""
        return self._load(model, device)

    def unload(self, handle: Any) -> None:
        self._unload(handle)

    def run(
        self,
        handle: Any,
        inputs: Mapping[str, Audio],
        params: Mapping[str, Any],
        ctx: RunContext,
    ) -> RunResult:
        """Run one job on arrays. ``params`` must come from ``validate``."""
        self.check_inputs(list(inputs))
        ctx.check()
        return self._run(handle, inputs, params, ctx)

    # -- hooks -------------------------------------------------------------
    def _load(self, model: str, device: str) -> Any:
        return None

    def _unload(self, handle: Any) -> None:
        return None

    def _run(self, handle, inputs, params, ctx) -> RunResult:
        raise NotImplementedError
