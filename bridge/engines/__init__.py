"""Engine registry: built-in engines plus plugins from an entry-point group.

Engines are named by ``module:Class`` strings and imported on first use, so
the daemon starts without importing torch or any model library. An engine
whose module fails to import is listed as unavailable with the reason, not
fatal (as OpenTimelineIO reports adapters it cannot load).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from ..core.engine import Engine
from ..core.errors import NotFound, Unavailable

ENTRY_POINT_GROUP = "studio_bridge.engines"

BUILTIN = {
    "master": "bridge.engines.master:MasterEngine",
    "separate": "bridge.engines.demucs:SeparateEngine",
    "generate": "bridge.engines.musicgen:GenerateEngine",
    "reframe": "bridge.engines.reframe:ReframeEngine",
}


@dataclass
class EngineEntry:
    name: str
    target: str  # "module:Class"
    engine: Engine | None = None
    error: str = ""
    builtin: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Registry:
    """Finds engines by name and imports each once, lazily."""

    def __init__(self, targets: dict[str, str] | None = None, plugins: bool = True, store=None):
        self.store = store
        builtin = dict(targets if targets is not None else BUILTIN)
        self._entries = {name: EngineEntry(name, target, builtin=True) for name, target in builtin.items()}
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in self._entries and ep.value not in builtin.values():
                    self._entries[ep.name] = EngineEntry(ep.name, ep.value)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Engine:
        """Return the engine called ``name``, importing it on first use.

        Raises:
            NotFound: no such engine.
            Unavailable: its module failed to import (e.g. a missing extra).
        """
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"engine '{name}' does not exist; engines: {', '.join(self.names())}")
        self._import(entry, self.store)
        if entry.engine is None:
            raise Unavailable(f"engine '{name}' cannot load: {entry.error}")
        return entry.engine

    def bind_store(self, store) -> None:
        """Give every engine (imported now or later) the model store."""
        self.store = store
        for entry in self._entries.values():
            if entry.engine is not None:
                entry.engine.store = store

    def add(self, engine: Engine) -> None:
        """Register an already-built engine (tests, embedding)."""
        engine.store = self.store
        self._entries[engine.name] = EngineEntry(engine.name, "", engine=engine)

    def describe(self) -> list[tuple[str, Engine | None, str]]:
        """(name, engine or None, error) for every engine, importing each."""
        out = []
        for name in self.names():
            entry = self._entries[name]
            self._import(entry, self.store)
            out.append((name, entry.engine, entry.error))
        return out

    def engine_for_model(self, model: str) -> Engine:
        """The engine that owns ``model`` (model names are unique)."""
        return self.model_spec(model)[0]

    def model_spec(self, model: str):
        """(engine, ModelSpec) of installed ``model``.

        Raises:
            NotFound: no engine has it installed; the message lists what is.
        """
        known = []
        for _, engine, _ in self.describe():
            for spec in (engine.models() if engine else ()):
                if spec.name == model:
                    return engine, spec
                known.append(spec.name)
        raise NotFound(f"model '{model}' is not known; models: {', '.join(known) or 'none'}")

    @staticmethod
    def _import(entry: EngineEntry, store) -> None:
        with entry.lock:
            if entry.engine is not None or entry.error:
                return
            module_name, _, class_name = entry.target.partition(":")
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
                engine = cls()
                engine.store = store
                entry.engine = engine
            except Exception as exc:  # reported in describe(), never fatal
                fix = (f"install its extra: pip install 'studio-bridge[{entry.name}]' "
                       f"(installers/setup.sh installs all)" if entry.builtin else
                       f"reinstall the package that provides the plugin '{entry.target}'")
                entry.error = f"{type(exc).__name__}: {exc}; {fix}"
