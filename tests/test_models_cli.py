"""`studio-bridge models ...` end to end: a plugin model engine, a real HTTP origin, a real daemon."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from tests.conftest import ROOT, running_daemon, write_tone

WEIGHTS = os.urandom(256 << 10)


@pytest.fixture
def origin():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = WEIGHTS if self.path == "/toy-weights.bin" else None
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def plugin_env(tmp_path, origin, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_models.py").write_text(textwrap.dedent(f'''
        import os
        from pathlib import Path
        from bridge.core.engine import (Engine, EngineKind, ModelSpec, Output, PullPlan, RemoteFile,
                                        RunResult)

        class Toy(Engine):
            name = "toy"
            kind = EngineKind.MODEL

            def models(self):
                return [ModelSpec(e.name, e.version, e.size_bytes, e.licence, e.description)
                        for e in self.store.entries("toy")]

            def catalogue(self):
                return ["toy-small"]

            def pull_plan(self, name):
                url = os.environ["TOY_URL"] + "/toy-weights.bin"
                return PullPlan(name, [RemoteFile(url, "weights.bin", "{hashlib.sha256(WEIGHTS).hexdigest()[:8]}")],
                                licence="CC0 (test)", description="a toy")

            def _load(self, model, device):
                return len((self.store.path(model) / "weights.bin").read_bytes())

            def _run(self, handle, inputs, params, ctx):
                return RunResult([Output("same", inputs["audio"])], {{"weight_bytes": handle}})
    '''))
    info = site / "toy_models-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[studio_bridge.engines]\ntoy = toy_models:Toy\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TOY_URL", origin)


def cli(*args, env_addr=None):
    env = dict(os.environ)
    if env_addr:
        env["STUDIO_BRIDGE_ADDR"] = env_addr
    result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    return result, json.loads(result.stdout) if result.stdout.strip().startswith("{") else None


def test_pull_then_the_daemon_uses_it_then_remove(plugin_env, media_dir):
    with running_daemon(media_dir) as daemon:
        state = str(daemon.state_dir)
        _, listed = cli("models", "list", "--json", env_addr=daemon.addr)
        [row] = [m for m in listed["models"] if m["engine"] == "toy"]
        assert (row["name"], row["installed"], row["resident"]) == ("toy-small", False, False)
        assert "models pull toy-small" in row["description"]

        result, pulled = cli("models", "pull", "toy-small", "--state-dir", state, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        model = pulled["model"]
        assert model["name"] == "toy-small" and model["licence"] == "CC0 (test)"
        assert model["size_bytes"] == len(WEIGHTS) and model["source"].endswith("/toy-weights.bin")

        src = write_tone(daemon.media / "a.wav", seconds=1)
        with daemon.client() as client:  # the running daemon sees the new model at once
            job = client.run("toy", {"audio": str(src)}, out_dir=str(daemon.media / "o"), model="toy-small")
        assert job["report"]["weight_bytes"] == len(WEIGHTS)
        assert job["outputs"][0]["path"].endswith("a.toy-small.same.wav")  # named by the model
        _, listed = cli("models", "list", "--json", env_addr=daemon.addr)
        [row] = [m for m in listed["models"] if m["engine"] == "toy"]
        assert row["installed"] and row["resident"] and row["expires_at"] > 0

        result, removed = cli("models", "remove", "toy-small", "--state-dir", state, "--json",
                              env_addr=daemon.addr)
        assert result.returncode == 0 and removed["removed"]["name"] == "toy-small"
        _, listed = cli("models", "list", "--json", env_addr=daemon.addr)
        [row] = [m for m in listed["models"] if m["engine"] == "toy"]
        assert not row["installed"] and not row["resident"]  # unloaded and uninstalled
        with daemon.client() as client:
            from bridge.core.errors import NotFound

            with pytest.raises(NotFound, match="models pull"):
                client.submit("toy", {"audio": str(src)}, model="toy-small")


def test_models_list_without_a_daemon_reads_the_store(plugin_env, tmp_path):
    state = str(tmp_path / "state")
    cli("models", "pull", "toy-small", "--state-dir", state, "--json")
    result, listed = cli("models", "list", "--json", "--state-dir", state, "--addr",
                         f"unix://{tmp_path}/nothing.sock")
    assert result.returncode == 0
    [row] = [m for m in listed["models"] if m["engine"] == "toy"]
    assert row["installed"] and not row["resident"] and row["size_bytes"] == len(WEIGHTS)


def test_pull_of_an_unknown_model_lists_what_can_be_pulled(plugin_env, tmp_path):
    result, payload = cli("models", "pull", "toy-huge", "--state-dir", str(tmp_path), "--json")
    assert result.returncode == 1
    assert payload["error"]["code"] == "not_found" and "toy-small" in payload["error"]["message"]
