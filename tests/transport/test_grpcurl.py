"""bridge.v1.Bridge driven by the real grpcurl binary (no grpcio on the client side).

grpcurl learns the API from server reflection only, so these tests also prove
that reflection, health and the JSON mapping of the wire contract work for a
client nobody on this team wrote. The mastered result is judged by ffmpeg's
ebur128 filter (integrated loudness) and libebur128 (true peak).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import loudness
from tests.conftest import running_daemon, write_tone
from tests.music import cache_dir, have_renderer, render_bach

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
if not Path(GRPCURL).exists():
    GRPCURL = shutil.which("grpcurl") or GRPCURL

pytestmark = pytest.mark.skipif(not Path(GRPCURL).exists(), reason="grpcurl is not installed")

EXIT_BASE = 64  # grpcurl exits with 64 + the gRPC status code on an RPC error
NOT_FOUND, INVALID_ARGUMENT = 5, 3


# -- helpers --------------------------------------------------------------------------
def grpcurl(*args: str, data: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def over_tcp(daemon) -> list[str]:
    """grpcurl's arguments for the daemon's TCP port: the token, as a user passes it."""
    return ["-H", f"authorization: Bearer {daemon.token}", daemon.tcp]


def json_stream(text: str) -> list[dict]:
    """grpcurl prints one JSON object per streamed message, back to back."""
    decoder, out, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return out
        obj, index = decoder.raw_decode(text, index)
        out.append(obj)


def ffmpeg_integrated(path: Path) -> float:
    result = subprocess.run(["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-af",
                             "ebur128=peak=true", "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = result.stderr.rpartition("Summary:")[2]
    match = re.search(r"\bI:\s+(-?\d+(?:\.\d+)?)\s+LUFS", summary)
    assert match, f"no integrated loudness in ffmpeg's summary:\n{summary}"
    return float(match.group(1))


def ebur128_true_peak(path: Path) -> float:
    """True peak (dBTP, max over channels) by libebur128."""
    return loudness.measure(path)["true_peak_dbtp"]


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    """One daemon for this module: grpcurl calls are cheap, daemon starts are not."""
    with running_daemon() as proc:
        yield proc


@pytest.fixture(scope="module")
def song(served, tmp_path_factory) -> Path:
    """30 s of a Bach chorale (fluidsynth) under the media root, or a tone without fluidsynth."""
    dest = served.media / "chorale.wav"
    if have_renderer():
        shutil.copyfile(render_bach(cache_dir(tmp_path_factory), 48000, seconds=30), dest)
    else:
        write_tone(dest, 30.0, 48000, 2)
    return dest


# -- reflection and health ------------------------------------------------------------------
def test_reflection_lists_services(served):
    result = grpcurl(*over_tcp(served), "list")
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert "bridge.v1.Bridge" in services
    assert "grpc.health.v1.Health" in services


def test_describe_bridge_shows_the_contract(served):
    result = grpcurl(*over_tcp(served), "describe", "bridge.v1.Bridge")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "bridge.v1.Bridge is a service" in text
    for rpc in ("Submit", "Watch", "Cancel", "GetJob", "ListJobs", "Upload", "Download",
                "ListEngines", "ListModels", "LoadModel", "UnloadModel", "Status"):
        assert f"rpc {rpc} (" in text, f"{rpc} missing from:\n{text}"
    assert re.search(r"rpc Watch \( \.bridge\.v1\.WatchRequest \) returns \( stream \.bridge\.v1\.JobEvent \)", text)
    states = grpcurl(*over_tcp(served), "describe", "bridge.v1.JobState")
    assert states.returncode == 0, states.stderr
    assert "INTERRUPTED = 7" in states.stdout


@pytest.mark.parametrize("service", ["", "bridge.v1.Bridge"])
def test_health_serving_over_tcp(served, service):
    result = grpcurl("-d", json.dumps({"service": service}), *over_tcp(served), "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_unix_socket_list_and_health(served):
    sock = served.addr.removeprefix("unix://")
    assert Path(sock).exists()
    listed = grpcurl("-unix", sock, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"bridge.v1.Bridge", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    health = grpcurl("-unix", "-d", '{"service":""}', sock, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"


# -- a whole job ------------------------------------------------------------------------------
def test_submit_and_watch_master_job(served, song):
    out_dir = served.media / "grpcurl-out"
    request = {"engine": "master", "inputs": {"audio": {"path": str(song)}},
               "params": {"preset": "streaming"}, "out_dir": str(out_dir), "no_cache": True,
               "client": "grpcurl-test"}
    submitted = grpcurl(*over_tcp(served), "bridge.v1.Bridge/Submit", data=request)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["engine"] == "master"
    assert job["state"] in ("SUBMITTED", "QUEUED", "RUNNING"), job
    assert job["params"]["preset"] == "streaming"

    watched = grpcurl("-max-time", "60", "-d", json.dumps({"job_id": job["id"]}), *over_tcp(served),
                      "bridge.v1.Bridge/Watch", timeout=90)
    assert watched.returncode == 0, watched.stderr
    events = json_stream(watched.stdout)
    assert events, "Watch sent no events"
    seqs = [int(e["seq"]) for e in events]
    assert seqs == sorted(set(seqs)), f"seq must increase: {seqs}"
    states = [e["job"]["state"] for e in events]
    assert states[-1] == "SUCCEEDED", f"{states}: {events[-1]['job'].get('error')}"
    assert all(s not in ("SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED") for s in states[:-1]), states
    final = events[-1]["job"]
    assert final["id"] == job["id"]
    assert final.get("progress") == 1

    outputs = final["outputs"]
    assert [o["kind"] for o in outputs] == ["mastered"]
    path = Path(outputs[0]["path"])
    assert path.parent == out_dir
    assert path.name == "chorale.master.mastered.wav"
    assert path.is_file() and path.stat().st_size == int(outputs[0]["size"])

    lufs = ffmpeg_integrated(path)
    assert abs(lufs - (-14.0)) <= 0.1, f"ffmpeg ebur128 reads {lufs} LUFS"
    peak = ebur128_true_peak(path)
    assert peak <= -1.0, f"libebur128 true peak {peak:.3f} dBTP is over the -1 dBTP ceiling"
    # the report agrees with the meters
    after = final["report"]["after"]
    assert abs(after["integrated_lufs"] - lufs) <= 0.1
    assert abs(after["true_peak_dbtp"] - peak) <= 0.05

    again = grpcurl(*over_tcp(served), "bridge.v1.Bridge/GetJob", data={"job_id": job["id"]})
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "SUCCEEDED"


# -- errors ------------------------------------------------------------------------------------
def test_get_unknown_job_is_not_found(served):
    result = grpcurl("-v", *over_tcp(served), "bridge.v1.Bridge/GetJob", data={"job_id": "no-such-job"})
    assert result.returncode == EXIT_BASE + NOT_FOUND, (result.returncode, result.stdout, result.stderr)
    err = result.stdout + result.stderr
    assert "Code: NotFound" in err
    assert "no-such-job" in err  # names what was asked for
    assert "studio-bridge jobs" in err  # and what to do
    assert re.search(r"bridge-error-code: not_found", err), err


def test_list_engines_describes_master(served):
    result = grpcurl(*over_tcp(served), "bridge.v1.Bridge/ListEngines", data={})
    assert result.returncode == 0, result.stderr
    engines = {e["name"]: e for e in json.loads(result.stdout)["engines"]}
    master = engines["master"]
    assert master["available"] is True
    assert master["kind"] == "dsp"
    params = {p["name"]: p for p in master["params"]}
    assert {"preset", "lufs", "ceiling", "eq", "glue", "format"} <= set(params)
    assert params["preset"]["type"] == "choice"
    assert params["preset"]["default"] == "streaming"
    assert set(params["preset"]["choices"]) >= {"streaming", "apple", "ebu-r128", "atsc-a85"}
    assert params["lufs"]["type"] == "float" and params["lufs"]["unit"] == "LUFS"
    assert params["lufs"]["minimum"] < params["lufs"]["maximum"]
    assert params["ceiling"]["unit"] == "dBTP"
    assert params["eq"]["type"] == "bool" and params["eq"]["default"] is True
    assert "wav24" in params["format"]["choices"]
    inputs = {i["name"]: i for i in master["inputs"]}
    assert inputs["audio"].get("required") is True
    assert not inputs["reference"].get("required", False)


@pytest.mark.parametrize("request_, code, status, words", [
    ({"engine": "no-such-engine", "inputs": {"audio": {"path": "/x.wav"}}},
     NOT_FOUND, "NotFound", ["no-such-engine", "master"]),
    ({"engine": "master", "inputs": {"audio": {"path": "{song}"}}, "params": {"preset": "loud"}},
     INVALID_ARGUMENT, "InvalidArgument", ["preset", "streaming", "ebu-r128"]),
    ({"engine": "master", "inputs": {"audio": {"path": "{song}"}}, "params": {"volume": 11}},
     INVALID_ARGUMENT, "InvalidArgument", ["volume", "preset"]),
    ({"engine": "master", "inputs": {}},
     INVALID_ARGUMENT, "InvalidArgument", ["audio", "required"]),
], ids=["unknown-engine", "bad-preset", "unknown-param", "missing-input"])
def test_bad_submit_gives_clear_error(served, song, request_, code, status, words):
    request_ = json.loads(json.dumps(request_).replace("{song}", str(song)))
    result = grpcurl("-v", *over_tcp(served), "bridge.v1.Bridge/Submit", data=request_)
    assert result.returncode == EXIT_BASE + code, (result.returncode, result.stdout, result.stderr)
    text = result.stdout + result.stderr
    assert f"Code: {status}" in text
    message = text.partition("Message:")[2]
    for word in words:
        assert word in message, f"{word!r} not in the error message: {message}"
    # nothing was queued for a refused request
    jobs = grpcurl(*over_tcp(served), "bridge.v1.Bridge/ListJobs", data={})
    assert all(j.get("engine") != "no-such-engine" for j in json.loads(jobs.stdout).get("jobs", []))
