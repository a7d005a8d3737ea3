"""Small engines for driving the core without real DSP or models.

They are real ``Engine`` subclasses going through the same validation, run
protocol and file handling as production engines; only their arithmetic is
trivial, so the core's behaviour is what the tests observe.
"""

from __future__ import annotations

import threading


from bridge.core.engine import Audio, Engine, EngineKind, InputSpec, ModelSpec, Output, Param, RunResult


class GainEngine(Engine):
    """DSP: multiplies by ``gain``; can block on an event or fail on demand."""

    name = "gain"
    kind = EngineKind.DSP
    params = (Param("gain", "float", 0.5, minimum=0, maximum=4),
              Param("steps", "int", 1, minimum=1, maximum=1000),
              Param("fail", "bool", False))
    inputs = (InputSpec("audio"),)

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        # When set, every step also takes one permit: a test can release steps one by one.
        self.steps: threading.Semaphore | None = None
        self.started = threading.Event()
        self.runs = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def _run(self, handle, inputs, params, ctx):
        with self._lock:
            self.runs += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            self.started.set()
            for step in range(params["steps"]):
                self.gate.wait(10)
                if self.steps is not None:
                    self.steps.acquire(timeout=10)
                ctx.check()
                ctx.progress((step + 1) / params["steps"], f"step {step + 1}")
            if params["fail"]:
                raise ValueError("asked to fail")
            audio = inputs["audio"]
            out = Audio(audio.samples * params["gain"], audio.sample_rate)
            return RunResult([Output("scaled", out)], {"gain": params["gain"]})
        finally:
            with self._lock:
                self.concurrent -= 1


class ModelGainEngine(GainEngine):
    """A 'model' engine: the handle is the gain; loads are counted."""

    name = "modelgain"
    kind = EngineKind.MODEL

    def __init__(self):
        super().__init__()
        self.loads = []
        self.unloads = []

    def models(self):
        return [ModelSpec("double", "v1", size_bytes=1000, licence="test"),
                ModelSpec("triple", "v1", size_bytes=1000, licence="test")]

    def _load(self, model, device):
        self.loads.append(model)
        return {"double": 2.0, "triple": 3.0}[model]

    def _unload(self, handle):
        self.unloads.append(handle)

    def _run(self, handle, inputs, params, ctx):
        result = super()._run(handle, inputs, {**params, "gain": handle}, ctx)
        result.report["model_gain"] = handle
        return result


class StoreEngine(Engine):
    """A model engine whose catalogue points at a test HTTP server."""

    name = "toy"
    kind = EngineKind.MODEL
    base_url = ""
    files: dict[str, bytes] = {}  # filename -> content served

    def models(self):
        return [ModelSpec(e.name, e.version, e.size_bytes, e.licence) for e in self.store.entries("toy")]

    def catalogue(self):
        return ["toy-small"]

    def pull_plan(self, name):
        import hashlib

        from bridge.core.engine import PullPlan, RemoteFile

        remote = [RemoteFile(f"{self.base_url}/{fname}", fname, hashlib.sha256(data).hexdigest()[:8])
                  for fname, data in self.files.items()]
        return PullPlan(name, remote, extra={"toy.yaml": b"models: [toy]\n"}, licence="CC0 (test)")

    def import_model(self, source, name, staged):
        from pathlib import Path

        from bridge.core.errors import InvalidArgument

        source = Path(source)
        if source.suffix != ".toy":
            raise InvalidArgument(f"'{source}' is not a .toy checkpoint")
        (Path(staged) / source.name).write_bytes(source.read_bytes())
        return {"licence": "yours", "description": "imported toy"}

    def _load(self, model, device):
        return self.store.path(model)

    def _run(self, handle, inputs, params, ctx):
        return RunResult([Output("same", inputs["audio"])], {"model_dir": str(handle)})


class ClipEngine(Engine):
    """Video-shaped: reads its input file itself and renders a file in the job's
    scratch folder (here: the first ``keep`` bytes, as a trivial "render")."""

    name = "clip"
    kind = EngineKind.DSP
    params = (Param("keep", "int", 100, minimum=1, maximum=1 << 30),)
    inputs = (InputSpec("video", kind="video"),)

    def _run(self, handle, inputs, params, ctx):
        source = inputs["video"]
        self.seen = source
        out = ctx.scratch.file(".mp4")
        with open(source.path, "rb") as handle_in, open(out, "wb") as handle_out:
            handle_out.write(handle_in.read(params["keep"]))
        self.rendered = out
        return RunResult([Output("video", path=out, suffix=".mp4"),
                          Output("keyframes", data=b"{}", suffix=".json")], {"kept": params["keep"]})
