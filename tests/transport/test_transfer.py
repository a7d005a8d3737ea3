"""Remote-host media: content-addressed upload, streamed download."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from bridge.core.errors import InvalidArgument, NotFound, PermissionDenied
from bridge.v1 import bridge_pb2 as pb
from bridge.v1 import bridge_pb2_grpc as pb_grpc


def test_upload_is_content_addressed_and_download_returns_the_bytes(daemon, tmp_path):
    data = os.urandom(5 * (1 << 20) + 123)  # several chunks and a ragged end
    src = tmp_path / "clip.bin"
    src.write_bytes(data)
    with daemon.client() as client:
        blob = client.upload(src)
        assert blob == hashlib.sha256(data).hexdigest()
        assert (daemon.state_dir / "blobs" / blob).read_bytes() == data
        assert client.upload(src) == blob  # second time: already stored
        got = client.download("blob:" + blob, tmp_path / "back.bin")
        assert got.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "clip.bin"]  # no temp left


def test_known_blob_is_not_sent_again(daemon, tmp_path):
    data = os.urandom(1 << 20)
    sha = hashlib.sha256(data).hexdigest()
    channel = grpc.insecure_channel(daemon.addr)
    stub = pb_grpc.BridgeStub(channel)
    assert stub.Upload(iter([pb.UploadChunk(data=data, sha256=sha)])).blob == sha
    sent = []

    def chunks():  # declares a stored hash; the daemon answers without reading on
        for index in range(50):
            sent.append(index)
            yield pb.UploadChunk(data=b"x" * (1 << 20), sha256=sha if index == 0 else "")

    reply = stub.Upload(chunks())
    assert reply.blob == sha and reply.size == len(data)
    assert len(sent) < 50
    channel.close()


def test_declared_hash_mismatch_is_refused_and_nothing_stored(daemon):
    channel = grpc.insecure_channel(daemon.addr)
    stub = pb_grpc.BridgeStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Upload(iter([pb.UploadChunk(data=b"hello", sha256="0" * 64)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not match its declared sha256" in err.value.details()
    channel.close()
    assert [p.name for p in (daemon.state_dir / "blobs").iterdir()] == []


def test_download_refuses_what_it_must_not_serve(daemon, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    with daemon.client() as client:
        with pytest.raises(PermissionDenied, match="media roots"):
            client.download(str(outside), tmp_path / "x")
        with pytest.raises(NotFound, match="upload it first"):
            client.download("blob:" + "a" * 64, tmp_path / "y")
        with pytest.raises(InvalidArgument, match="64 hex digits"):
            client.download("blob:nothex", tmp_path / "z")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]
