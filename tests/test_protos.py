"""The committed stubs are exactly what the proto generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("protogen", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_match_the_proto(tmp_path):
    written = _generator().generate(tmp_path)
    assert {p.name for p in written} == {"bridge_pb2.py", "bridge_pb2.pyi", "bridge_pb2_grpc.py"}
    for fresh in written:
        committed = ROOT / "bridge" / "v1" / fresh.name
        assert committed.read_text() == fresh.read_text(), (
            f"{committed} is stale: run `python protos/generate.py` and commit the result")


def test_service_has_the_contracted_methods():
    from bridge.v1 import bridge_pb2

    service = bridge_pb2.DESCRIPTOR.services_by_name["Bridge"]
    assert service.full_name == "bridge.v1.Bridge"
    assert {m.name for m in service.methods} == {
        "Submit", "Watch", "Cancel", "GetJob", "ListJobs", "Upload", "Download",
        "ListEngines", "ListModels", "LoadModel", "UnloadModel", "Status"}
    streams = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert streams["Watch"] == (False, True)
    assert streams["Upload"] == (True, False)
    assert streams["Download"] == (False, True)
