"""`models pull` / `import` / `remove` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import pytest

from bridge.core import install
from bridge.core.errors import InvalidArgument, NotFound, Unavailable
from bridge.core.store import ModelStore
from bridge.engines import Registry
from tests.fakes import StoreEngine


class Origin(http.server.ThreadingHTTPServer):
    """Serves files with Range support; can break off mid-file or corrupt a byte."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        self.break_after: int | None = None
        self.break_on = ""  # only a path ending so breaks off (default: the next request)
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        data = self.server.files.get(self.path.lstrip("/"))
        self.server.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = self.server.break_after
        if limit is not None and self.path.endswith(self.server.break_on):
            self.server.break_after = None
            self.wfile.write(body[:limit])
            self.wfile.flush()
            self.connection.shutdown(2)  # the transfer breaks off
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def origin():
    files = {"toy-abcdef.th": os.urandom(3 << 20), "toy-second.th": os.urandom(100_000)}
    server = Origin(files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def setup(tmp_path, origin):
    store = ModelStore(tmp_path / "models")
    registry = Registry(targets={}, plugins=False)
    engine = StoreEngine()
    engine.base_url = f"http://127.0.0.1:{origin.server_address[1]}"
    engine.files = dict(origin.files)
    registry.add(engine)
    registry.bind_store(store)
    return store, registry, engine


def test_pull_fetches_verifies_and_registers(setup, origin):
    store, registry, engine = setup
    seen = []
    entry = install.pull(store, registry, "toy-small", progress=lambda f, d, t: seen.append((f, d, t)))
    folder = store.path("toy-small")
    for name, data in origin.files.items():
        assert (folder / name).read_bytes() == data
    assert (folder / "toy.yaml").read_text() == "models: [toy]\n"
    assert entry.engine == "toy" and entry.licence == "CC0 (test)" and len(entry.version) == 12
    assert entry.size_bytes == sum(len(d) for d in origin.files.values()) + len("models: [toy]\n")
    assert {f for f, _, _ in seen} == set(origin.files) and seen[-1][1] == seen[-1][2]
    assert [m.name for m in engine.models()] == ["toy-small"]
    assert sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".")) == ["store.json", "toy-small"]


def test_wrong_checksum_installs_nothing(setup, origin):
    store, registry, engine = setup
    engine.files = {**engine.files, "toy-abcdef.th": b"what the source promised"}  # checksum from other bytes
    with pytest.raises(InvalidArgument, match="expected .*the file was deleted"):
        install.pull(store, registry, "toy-small")
    assert store.entries() == []
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".add-")] == []
    assert not any((store.root / ".partial").glob("*.part"))


def test_interrupted_transfer_resumes_where_it_stopped(setup, origin):
    store, registry, _ = setup
    origin.break_after = 1 << 20
    with pytest.raises(Unavailable, match="run the same pull again to resume"):
        install.pull(store, registry, "toy-small")
    assert store.entries() == []
    part = next((store.root / ".partial").glob("*.part"))
    assert part.stat().st_size == 1 << 20
    install.pull(store, registry, "toy-small")
    ranges = [r for p, r in origin.requests if p == "/toy-abcdef.th"]
    assert ranges == [None, f"bytes={1 << 20}-"]  # the second request asked only for the rest
    data = origin.files["toy-abcdef.th"]
    assert (store.path("toy-small") / "toy-abcdef.th").read_bytes() == data
    recorded = {f["name"]: f["sha256"] for f in store.get("toy-small").files}
    assert recorded["toy-abcdef.th"] == hashlib.sha256(data).hexdigest()


def test_unknown_or_unreachable_or_duplicate(setup, origin):
    store, registry, engine = setup
    with pytest.raises(NotFound, match="can be pulled: toy-small"):
        install.pull(store, registry, "toy-huge")
    install.pull(store, registry, "toy-small")
    with pytest.raises(InvalidArgument, match="already installed"):
        install.pull(store, registry, "toy-small")
    store.remove("toy-small")
    engine.base_url = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(Unavailable, match="cannot download|broke off"):
        install.pull(store, registry, "toy-small")
    with pytest.raises(NotFound, match="not installed; installed: none.*models pull toy-small"):
        store.path("toy-small")


def test_import_registers_a_local_checkpoint_and_refuses_others(setup, tmp_path):
    store, registry, _ = setup
    ckpt = tmp_path / "mine.toy"
    ckpt.write_bytes(b"weights")
    entry = install.import_path(store, registry, ckpt, name="my-toy")
    assert entry.source == f"import:{ckpt}" and (store.path("my-toy") / "mine.toy").read_bytes() == b"weights"
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InvalidArgument, match="toy: '.*notes.txt' is not a .toy checkpoint"):
        install.import_path(store, registry, other)
    with pytest.raises(NotFound, match="does not exist"):
        install.import_path(store, registry, tmp_path / "missing.toy")
    with pytest.raises(InvalidArgument, match="not allowed"):
        install.import_path(store, registry, ckpt, name="../evil")
    assert [e.name for e in store.entries()] == ["my-toy"]
    assert store.remove("my-toy").name == "my-toy" and not (store.root / "my-toy").exists()


def test_demucs_pull_asks_demucs_own_locations_and_checks_their_checksums(tmp_path, monkeypatch):
    """The real separate engine's plan against a local origin serving the wrong bytes."""
    from bridge.engines.demucs import SeparateEngine

    files = {}
    server = Origin(files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("STUDIO_BRIDGE_DEMUCS_URL", f"http://127.0.0.1:{server.server_address[1]}/demucs/")
        engine = SeparateEngine()
        plan = engine.pull_plan("htdemucs")
        assert [f.filename for f in plan.files] == ["955717e8-8726e21a.th"]  # demucs's own listing
        for remote in plan.files:
            files[remote.url.split("/", 3)[3]] = b"not the published weights"
        store = ModelStore(tmp_path / "models")
        registry = Registry(targets={}, plugins=False)
        registry.add(engine)
        registry.bind_store(store)
        with pytest.raises(InvalidArgument, match="expected 8726e21a"):
            install.pull(store, registry, "htdemucs")
        assert [path for path, _ in server.requests] == ["/demucs/hybrid_transformer/955717e8-8726e21a.th"]
        assert store.entries() == []
    finally:
        server.shutdown()
        server.server_close()
