"""Engines are found by name and entry point, imported lazily, failures reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bridge.core.errors import NotFound, Unavailable
from bridge.engines import Registry
from tests.conftest import ROOT


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A real installed distribution (dist-info + entry point) on sys.path."""
    site = tmp_path / "site"
    (site / "echo_plugin").mkdir(parents=True)
    (site / "echo_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from bridge.core.engine import Audio, Engine, EngineKind, ModelSpec, Output, RunResult

        class Echo(Engine):
            name = "echo"
            description = "returns its input"

            def _run(self, handle, inputs, params, ctx):
                return RunResult([Output("echo", inputs["audio"])], {})

        class Louder(Engine):
            """A model engine whose 'model' is a gain: residency without weights."""
            name = "louder"
            kind = EngineKind.MODEL

            def models(self):
                return [ModelSpec("louder-2x", "1", size_bytes=4096, licence="test")]

            def _load(self, model, device):
                return 2.0

            def _run(self, handle, inputs, params, ctx):
                audio = inputs["audio"]
                return RunResult([Output("louder", Audio(audio.samples * handle, audio.sample_rate))],
                                 {"gain": handle})
    '''))
    (site / "broken_plugin.py").write_text("import module_that_is_not_installed\n")
    info = site / "echo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[studio_bridge.engines]\necho = echo_plugin:Echo\nlouder = echo_plugin:Louder\n"
        "broken = broken_plugin:Broken\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_plugins_come_from_the_entry_point_group(plugin_site):
    registry = Registry()
    assert {"master", "echo", "broken"} <= set(registry.names())
    assert registry.get("echo").description == "returns its input"


def test_an_engine_that_fails_to_import_is_reported_not_fatal(plugin_site):
    registry = Registry()
    described = {name: (engine, error) for name, engine, error in registry.describe()}
    engine, error = described["broken"]
    assert engine is None
    assert "module_that_is_not_installed" in error and "reinstall the package" in error
    assert described["echo"][0] is not None
    with pytest.raises(Unavailable, match="engine 'broken' cannot load"):
        registry.get("broken")


def test_missing_builtin_extra_names_the_extra():
    registry = Registry(targets={"master": "bridge.engines.not_a_module:Master"}, plugins=False)
    with pytest.raises(Unavailable, match=r"pip install 'studio-bridge\[master\]'"):
        registry.get("master")


def test_unknown_engine_lists_the_known_ones():
    with pytest.raises(NotFound, match="engine 'mastr' does not exist; engines: generate, master, reframe, separate"):
        Registry(plugins=False).get("mastr")


def test_engines_are_imported_lazily():
    code = ("import sys; from bridge.engines import Registry; r = Registry(); "
            "assert 'bridge.engines.master' not in sys.modules and 'scipy' not in sys.modules; "
            "r.get('master'); assert 'bridge.engines.master' in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_daemon_lists_an_unavailable_engine_and_serves_the_rest(plugin_site, media_dir, monkeypatch):
    """Through the real daemon: ListEngines says why, Submit answers clearly."""
    import os

    from tests.conftest import running_daemon, write_tone

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")]))
    with running_daemon(media_dir) as daemon, daemon.client() as client:
        engines = {e["name"]: e for e in client.engines()}
        assert engines["broken"]["available"] is False
        assert "module_that_is_not_installed" in engines["broken"]["unavailable_reason"]
        assert engines["echo"]["available"] and engines["master"]["available"]
        src = write_tone(daemon.media / "a.wav", seconds=1)
        with pytest.raises(Unavailable, match="cannot load"):
            client.submit("broken", {"audio": str(src)})
        job = client.run("echo", {"audio": str(src)}, out_dir=str(daemon.media / "o"))
        assert job["state"] == "succeeded"
        assert job["outputs"][0]["path"].endswith("a.echo.echo.wav")


def test_models_load_unload_and_report_when_they_unload(plugin_site, media_dir, monkeypatch):
    """Residency over gRPC: LoadModel with a keep-alive, Status, jobs, UnloadModel."""
    import os
    import time

    from tests.conftest import running_daemon, write_tone

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")]))
    with running_daemon(media_dir) as daemon, daemon.client() as client:
        [model] = [m for m in client.models() if m["engine"] == "louder"]
        assert model["name"] == "louder-2x" and model["state"] == "unloaded" and model["licence"] == "test"
        loaded = client.load_model("louder-2x", keep_alive=600)
        assert loaded["state"] == "resident" and loaded["keep_alive"] == 600
        assert abs(loaded["expires_at"] - (time.time() + 600)) < 30
        status = client.status()
        assert [m["name"] for m in status["resident"]] == ["louder-2x"]
        assert status["memory_used"] == 4096
        src = write_tone(daemon.media / "a.wav", seconds=1, level=0.1)
        job = client.run("louder", {"audio": str(src)}, out_dir=str(daemon.media / "o"))
        assert job["state"] == "succeeded" and job["report"]["gain"] == 2.0
        assert client.unload_model("louder-2x")["state"] == "unloaded"
        assert client.status()["resident"] == []
        job = client.run("louder", {"audio": str(src)}, out_dir=str(daemon.media / "o"), keep_alive=0,
                         no_cache=True)
        assert job["state"] == "succeeded"
        louder = lambda: next(m for m in client.models() if m["name"] == "louder-2x")  # noqa: E731
        assert louder()["state"] == "unloaded"  # keep-alive 0: gone after the job
        result = daemon.cli("models", "load", "louder-2x", "--keep-alive", "forever", "--json", check=True)
        assert '"keep_alive": -1.0' in result.stdout
        assert louder()["expires_at"] == 0  # never
