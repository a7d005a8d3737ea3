"""A corpus of bad requests, each sent through gRPC, OSC and (where it has a form) the CLI.

The promises, for every case on every edge: a clear error with its stable code
and words naming what was wrong (never ``internal``, never a traceback in the
answer or the daemon's log), no job record for a refused request, no file in
the case's output folder, the input untouched, and a daemon that serves a good
job afterwards.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from bridge.transport.wire import to_struct
from bridge.v1 import bridge_pb2 as pb
from bridge.v1 import bridge_pb2_grpc as pb_grpc
from tests.conftest import ROOT, running_daemon, write_tone
from tests.transport.oscwire import UnixPeer


@dataclass
class Case:
    label: str
    code: str
    words: tuple[str, ...]
    path: str = "song"  # a key of the fixture's paths, or a literal path
    out: str = ""  # "" = the case's own folder under the media root
    engine: str = "master"
    params: dict = field(default_factory=dict)
    model: str = ""
    inputs: dict | None = None  # replaces {"audio": path}
    keep_alive: float | None = None
    cli: bool = False  # also has a CLI form (`studio-bridge master PATH --out DIR`)
    osc: bool = True
    grpc: bool = True


LONG = "y" * 300
CASES = [
    # inputs: paths
    Case("relative path", "invalid_argument", ("relative", "absolute"), path="song.wav"),
    # (an OSC string ends at its first NUL: the NUL cases have no OSC form)
    Case("NUL in path", "invalid_argument", ("NUL",), path="nul", osc=False),
    Case("name too long", "invalid_argument", ("longer than",), path="long", cli=True),
    Case("symlink loop", "invalid_argument", ("loop",), path="loop", cli=True),
    Case("FIFO", "invalid_argument", ("FIFO", "not a regular file"), path="fifo", cli=True),
    Case("unix socket file", "invalid_argument", ("socket",), path="sockfile", cli=True),
    Case("folder", "invalid_argument", ("folder",), path="folder", cli=True),
    Case("missing file", "not_found", ("does not exist",), path="missing", cli=True),
    Case("outside the roots", "permission_denied", ("outside", "--media-root"), path="/etc/hostname",
         cli=True),
    Case("link to outside", "permission_denied", ("outside",), path="link_out", cli=True),
    Case("hidden file", "permission_denied", ("hidden",), path="hidden", cli=True),
    Case("empty path", "invalid_argument", ("neither a path nor a blob",), path="", osc=False),
    Case("hidden reference", "permission_denied", ("hidden",),
         inputs={"audio": "song", "reference": "hidden"}),
    Case("missing reference", "not_found", ("does not exist",),
         inputs={"audio": "song", "reference": "missing"}),
    Case("unknown input name", "invalid_argument", ("takes inputs",),
         inputs={"audio": "song", "video": "song"}, osc=False),  # OSC: a name that is no input is a parameter
    Case("unknown name over OSC", "invalid_argument", ("no parameter 'video'",),
         inputs={"audio": "song", "video": "song"}, grpc=False),
    Case("no audio input", "invalid_argument", ("required",), inputs={}, osc=False),
    # output folders
    Case("relative out", "invalid_argument", ("relative",), out="out-rel"),
    Case("NUL in out", "invalid_argument", ("NUL",), out="nul-out", osc=False),
    Case("out outside the roots", "permission_denied", ("outside",), out="/tmp/sb-elsewhere", cli=True),
    Case("out is a file", "permission_denied", ("is a file",), out="file_out", cli=True),
    Case("out hidden", "permission_denied", ("hidden",), out="hidden_out", cli=True),
    Case("out name too long", "invalid_argument", ("longer than",), out="long_out", cli=True),
    Case("out link loop", "invalid_argument", ("loop",), out="loop_out", cli=True),
    # engines, models, parameters
    Case("unknown engine", "not_found", ("engine",), engine="mastr"),
    Case("long engine name", "not_found", ("engine",), engine="e" * 5000),
    Case("unknown parameter", "invalid_argument", ("no parameter", "it takes"), params={"loudness": -14}),
    Case("10,000 unknown parameters", "invalid_argument", ("and 9992 more",),
         params={f"p{i}": 1 for i in range(10000)}, osc=False),
    Case("NaN parameter", "invalid_argument", ("lufs", "finite"), params={"lufs": math.nan}),
    Case("infinite parameter", "invalid_argument", ("lufs", "finite"), params={"lufs": math.inf}),
    Case("text for a number", "invalid_argument", ("lufs", "float"), params={"lufs": "loud"}),
    Case("number out of range", "invalid_argument", ("lufs", "range"), params={"lufs": -100.0}),
    Case("unknown preset", "invalid_argument", ("preset", "streaming"), params={"preset": "spotify"}),
    Case("huge string", "invalid_argument", ("preset",), params={"preset": "x" * 100000}, osc=False),
    Case("bool that is not", "invalid_argument", ("eq", "bool"), params={"eq": "maybe"}),
    Case("nested value", "invalid_argument", ("lufs",), params={"lufs": {"a": 1}}, osc=False),
    Case("list value", "invalid_argument", ("lufs",), params={"lufs": [1, 2]}, osc=False),
    Case("no headroom", "invalid_argument", ("ceiling",), params={"lufs": -5.0, "ceiling": -6.0}),
    Case("bad format", "invalid_argument", ("format", "wav24"), params={"format": "mp3"}),
    Case("model for a DSP engine", "invalid_argument", ("uses no model",), model="htdemucs"),
    Case("unknown model", "not_found", ("not installed", "models pull"), engine="separate",
         model="htdemux"),
    Case("stem the model lacks", "invalid_argument", ("no stem 'vocals'", "harmonic"),
         engine="separate", model="hpss", params={"stems": "vocals"}),
    Case("stems and two stems", "invalid_argument", ("not both",), engine="separate", model="hpss",
         params={"stems": "harmonic", "two_stems": "harmonic"}),
    Case("huge integer", "invalid_argument", ("shifts",), engine="separate", model="hpss",
         params={"shifts": 1e300}, osc=False),
    Case("NaN keep-alive", "invalid_argument", ("keep_alive",), engine="separate", model="hpss",
         keep_alive=math.nan, osc=False),
    Case("blob id malformed", "invalid_argument", ("SHA-256",), inputs={"audio": "blob:xyz"}, osc=False),
    Case("blob unknown", "not_found", ("upload it first",), inputs={"audio": "blob:" + "ab" * 32},
         osc=False),
]


@pytest.fixture(scope="module")
def served():
    with running_daemon() as proc:
        media = proc.media
        song = write_tone(media / "song.wav", seconds=2.0)
        (media / "folder").mkdir()
        os.mkfifo(media / "fifo.wav")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(str(media / "sock.wav"))
        (media / "loop1").symlink_to(media / "loop2")
        (media / "loop2").symlink_to(media / "loop1")
        (media / "link.wav").symlink_to("/etc/hostname")
        (media / ".private").mkdir()
        write_tone(media / ".private" / "key.wav", seconds=1.0)
        (media / "a-file").write_text("not a folder")
        proc.paths = {
            "song": str(song), "nul": str(media / "so\x00ng.wav"), "long": str(media / (LONG + ".wav")),
            "loop": str(media / "loop1"), "fifo": str(media / "fifo.wav"), "sockfile": str(media / "sock.wav"),
            "folder": str(media / "folder"), "missing": str(media / "missing.wav"),
            "link_out": str(media / "link.wav"), "hidden": str(media / ".private" / "key.wav"),
            "out-rel": "relative/out", "nul-out": str(media / "o\x00ut"), "file_out": str(media / "a-file"),
            "hidden_out": str(media / ".private" / "out"), "long_out": str(media / LONG),
            "loop_out": str(media / "loop1" / "out"),
        }
        proc.song_bytes = song.read_bytes()
        yield proc
        unix.close()


def resolve(served, key: str) -> str:
    return served.paths.get(key, key)


def inputs_of(served, case: Case) -> dict:
    if case.inputs is None:
        return {"audio": resolve(served, case.path)}
    return {name: resolve(served, ref) for name, ref in case.inputs.items()}


def out_of(served, case: Case) -> str:
    return resolve(served, case.out) if case.out else str(served.media / ("out-" + case.label.replace(" ", "-")))


def check_answer(case: Case, code: str, message: str) -> None:
    assert code == case.code, (case.label, code, message)
    assert "Traceback" not in message and "internal" not in code
    assert len(message) <= 2000, (case.label, len(message))
    for word in case.words:
        assert word in message, (case.label, word, message)


def by_grpc(served, case: Case) -> tuple[str, str]:
    """The raw stub: nothing in our client checks the request first (NaN goes out as NaN)."""
    request = pb.SubmitRequest(engine=case.engine, model=case.model, out_dir=out_of(served, case))
    for name, ref in inputs_of(served, case).items():
        if ref.startswith("blob:"):
            request.inputs[name].blob = ref[5:]
        else:
            request.inputs[name].path = ref
    for name, value in case.params.items():
        if isinstance(value, float) and not math.isfinite(value):
            request.params.fields[name].number_value = value  # to_struct would drop it
        else:
            request.params.fields[name].CopyFrom(to_struct({name: value}).fields[name])
    if case.keep_alive is not None:
        request.keep_alive = case.keep_alive
    with grpc.insecure_channel(served.addr) as channel:
        try:
            pb_grpc.BridgeStub(channel).Submit(request, timeout=30)
        except grpc.RpcError as exc:
            return dict(exc.trailing_metadata() or ()).get("bridge-error-code", "?"), exc.details() or ""
    raise AssertionError(f"{case.label}: accepted over gRPC")


def by_osc(served, case: Case) -> tuple[str, str]:
    """/bridge/submit engine path out_dir [name value]... to the OSC unix socket, from a
    bound socket of the test's own (the answer comes back to its path)."""
    inputs = inputs_of(served, case)
    args = [case.engine, inputs.pop("audio", ""), out_of(served, case)]
    for name, path in inputs.items():
        args += [name, path]
    if case.model:
        args += ["model", case.model]
    for name, value in case.params.items():
        args += [name, value]
    with UnixPeer(served.osc_socket) as sender:
        sender.send(build_msg("/bridge/submit", args).dgram)
        reply = OscMessage(sender.recv(30))
    assert reply.address == "/bridge/error", (case.label, reply.address, reply.params)
    job_id, code, message = reply.params
    assert job_id == ""
    return code, message


def by_cli(served, case: Case) -> tuple[str, str]:
    result = served.cli("master", inputs_of(served, case)["audio"], "--out", out_of(served, case), "--json")
    assert result.returncode != 0 and "Traceback" not in result.stderr, (case.label, result.stderr)
    error = json.loads(result.stdout)["error"]
    return error["code"], error["message"]


EDGES = [("grpc", by_grpc), ("osc", by_osc), ("cli", by_cli)]
PAIRS = [pytest.param(case, edge, id=f"{name}:{case.label}")
         for case in CASES for name, edge in EDGES
         if getattr(case, name)]


@pytest.mark.parametrize("case,edge", PAIRS)
def test_bad_request(served, case, edge):
    check_answer(case, *edge(served, case))
    out = Path(out_of(served, case))
    if out.is_absolute() and "\x00" not in str(out) and out.name not in ("a-file", LONG):
        assert not out.exists() or not any(out.iterdir()), (case.label, list(out.iterdir()))


def test_an_oversize_upload_chunk_is_refused_quietly(served):
    """Found on main: it logged an ERROR traceback (any client could fill the log)."""
    def chunks():
        yield pb.UploadChunk(data=b"x" * (65 << 20))

    options = [("grpc.max_send_message_length", 100 << 20)]
    with grpc.insecure_channel(served.addr, options=options) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.BridgeStub(channel).Upload(chunks(), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Traceback" not in served.read_log()


def test_the_corpus_is_large_and_the_daemon_unharmed(served):
    """Runs after the corpus (pytest keeps file order)."""
    assert len(PAIRS) >= 60, len(PAIRS)
    assert served.alive()
    assert Path(served.paths["song"]).read_bytes() == served.song_bytes
    log = served.read_log()
    assert "Traceback" not in log and "internal" not in log.lower(), log[-3000:]
    with served.client() as client:
        assert client.list_jobs(limit=500) == []  # no refused request became a job
        job = client.run("master", {"audio": served.paths["song"]}, {}, str(served.media / "good"))
    assert job["state"] == "succeeded", job
    leftovers = [p for p in served.media.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []


def test_cli_usage_errors_are_one_json_object():
    result = subprocess.run([sys.executable, "-m", "bridge", "master", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and json.loads(result.stdout)["error"]["code"] == "invalid_argument"
