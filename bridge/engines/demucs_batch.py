"""Several demucs segments per forward pass, optionally in half precision.

``demucs.apply.apply_model`` splits a mix into overlapping segments and hands
each one to ``pool.submit(apply_model, model, chunk, ...)``, then collects the
futures in order and overlap-adds them. Its own pools run one segment per
forward pass. :class:`BatchPool` is a pool for that same call: it holds the
submitted segments and, when the first result is asked for, runs them through
the model ``size`` at a time as one batch. demucs keeps doing the splitting,
weighting, shifts and bag averaging, so the stems are the ones it would give
(equal to float precision at ``size`` > 1 in float32).

Half precision runs the forward pass under ``torch.autocast`` (float16 on
CUDA, bfloat16 on CPU): matrix products and convolutions in half, while the
STFT and its inverse, which autocast leaves alone, stay in float32. Whether a
model is safe in half is checked on its first batch: an operator that refuses
half, or a non-finite output, turns half off for that model and the batch is
run again in float32 (the caller reports it).

torch is imported by the engine before this module is used.
"""

from __future__ import annotations

import contextlib
import itertools
from threading import Lock
from typing import Any, Callable


class _Future:
    """A segment's result, computed by its pool when first asked for."""

    def __init__(self, pool: "BatchPool", index: int):
        self._pool, self._index = pool, index

    def result(self):
        return self._pool.result(self._index)


class BatchPool:
    """An executor for ``apply_model``'s split loop that batches the forward passes.

    Args:
        size: segments per forward pass (1 = demucs's own behaviour).
        half: run the forward pass under autocast in half precision.
        on_fallback: called once with the reason if half is turned off.
    """

    def __init__(self, size: int, half: bool = False,
                 on_fallback: Callable[[str], None] | None = None):
        self.size = max(1, int(size))
        self.half = half
        self.on_fallback = on_fallback
        self._pending: list[tuple[Any, Any, dict]] = []
        self._done: dict[int, Any] = {}
        self._next = 0  # first submission not run yet
        self._closed = False

    # -- the executor interface apply_model uses ---------------------------------
    def submit(self, fn, model, chunk, **kwargs) -> _Future:
        if self._closed:
            raise RuntimeError("pool is shut down")
        if kwargs.get("shifts") or kwargs.get("split"):
            # Only the innermost call (one segment, no shifts) is batched.
            raise ValueError("BatchPool only runs single segments")
        self._pending.append((model, chunk, kwargs))
        return _Future(self, len(self._pending) - 1)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        self._pending.clear()
        self._done.clear()

    # -- batching ----------------------------------------------------------------------
    def result(self, index: int):
        if index not in self._done:
            if index < self._next:
                raise RuntimeError("segment result already taken")
            while self._next <= index:
                self._run_batch()
        return self._done.pop(index)

    def _run_batch(self) -> None:
        import torch
        from demucs.apply import tensor_chunk
        from demucs.utils import center_trim

        first = self._next
        model, _, kwargs = self._pending[first]
        # Only one model per batch (a bag's members are submitted one after another).
        group = list(itertools.takewhile(lambda job: job[0] is model,
                                         self._pending[first:first + self.size]))
        self._next += len(group)
        device, lock = torch.device(kwargs["device"]), kwargs.get("lock") or Lock()
        chunks = [tensor_chunk(chunk) for _, chunk, _ in group]
        padded = [c.padded(_valid_length(model, c.length, kwargs.get("segment"))) for c in chunks]
        for _, _, kw in group:
            _notify(kw, lock, "start")
        out = self._forward(model, torch.cat(padded).to(device), device)
        for _, _, kw in group:
            _notify(kw, lock, "end")
        for k, chunk in enumerate(chunks):
            self._done[first + k] = center_trim(out[k:k + 1], chunk.length)
            self._pending[first + k] = None  # the segment view is no longer needed

    def _forward(self, model, batch, device):
        import torch

        if not self.half:
            with torch.no_grad():
                return model(batch)
        reason = None
        try:
            with torch.no_grad(), _autocast(device):
                out = model(batch)
            if torch.isfinite(out).all():
                return out.float()
            reason = "half precision gave non-finite values"
        except (RuntimeError, NotImplementedError) as exc:
            if "out of memory" in str(exc).lower():
                raise
            reason = f"half precision failed ({type(exc).__name__}: {str(exc)[:120]})"
        self.half = False
        if self.on_fallback:
            self.on_fallback(reason)
        with torch.no_grad():
            return model(batch)


def _autocast(device):
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _valid_length(model, length: int, segment) -> int:
    """The padded length demucs's innermost ``apply_model`` gives one segment."""
    from demucs.htdemucs import HTDemucs

    if isinstance(model, HTDemucs) and segment is not None:
        return int(segment * model.samplerate)
    if hasattr(model, "valid_length"):
        return model.valid_length(length)
    return length


def _notify(kwargs: dict, lock, state: str) -> None:
    callback = kwargs.get("callback")
    if callback is not None:
        with lock:
            callback({**(kwargs.get("callback_arg") or {}), "state": state})
