#!/usr/bin/env python3
"""RPC benchmarks of the Studio Bridge daemon against a raw grpcio baseline.

Starts a REAL daemon subprocess (``python -m bridge serve ...``) and, as the
baseline, a raw grpcio server written here (a generic bytes-in/bytes-out
handler, no proto, same 32-thread pool, same message-size options, one server
on a unix socket and one on TCP, as the daemon has), also in its own process.
Prints one Markdown table on stdout; progress goes to stderr.

    .venv/bin/python bench/rpc_bench.py            # 256 MiB transfers, ~2-3 min
    .venv/bin/python bench/rpc_bench.py --quick    # 128 MiB, fewer samples

Measures:
  1. round trips: Status and GetJob (unary) vs an echo unary; a tiny `master`
     job (1 s tone) Submit + Watch-until-done, cache hit and real run
     (no_cache), vs an echo unary + a one-message server stream;
  2. Upload / Download throughput of a random blob in 1 MiB chunks vs a raw
     client stream into a byte counter / a raw server stream of 1 MiB chunks;
  3. `serve` process start -> grpc.health.v1 SERVING over the socket, `--help`
     wall time, and which heavy modules `import bridge.cli` (and what `serve`
     imports) pull in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WORKERS = 32
CHUNK = 1 << 20
OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
           ("grpc.max_send_message_length", 64 << 20)]
# Fast reconnects so start-up polling measures the server, not grpc's 1 s backoff.
PROBE_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
                 ("grpc.max_reconnect_backoff_ms", 20)]
HEAVY = ("numpy", "scipy", "soundfile", "pedalboard", "torch", "torchaudio", "av", "pyebur128",
         "grpc", "google.protobuf", "pythonosc")

ECHO_UNARY = "/bench.Echo/Unary"
ECHO_SINK = "/bench.Echo/Sink"
ECHO_SOURCE = "/bench.Echo/Source"


def log(msg: str) -> None:
    print(f"[rpc_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the raw grpcio baseline server (runs in its own process) --------------------
def _echo_handlers(blob_root: str):
    def unary(request: bytes, context) -> bytes:
        return request

    def sink(request_iterator, context) -> bytes:
        total = 0
        for chunk in request_iterator:
            total += len(chunk)
        return str(total).encode()

    def source(request: bytes, context):
        total, size = (int(x) for x in request.decode().split(":"))
        block = b"\x5a" * size
        sent = 0
        while sent < total:
            piece = block if total - sent >= size else block[: total - sent]
            sent += len(piece)
            yield piece

    # The daemon's Upload rebuilt step by step, to see what each step costs:
    # proto decoding of UploadChunk, then + SHA-256, then the product's BlobStore.put.
    def sink_proto(request_iterator, context) -> bytes:
        return str(sum(len(chunk.data) for chunk in request_iterator)).encode()

    def sink_hash(request_iterator, context) -> bytes:
        digest, total = hashlib.sha256(), 0
        for chunk in request_iterator:
            digest.update(chunk.data)
            total += len(chunk.data)
        return str(total).encode()

    def sink_store(request_iterator, context) -> bytes:
        from bridge.core.blobs import BlobStore

        _, size = BlobStore(blob_root).put(chunk.data for chunk in request_iterator)
        return str(size).encode()

    def upload_chunk(data: bytes):
        from bridge.v1 import bridge_pb2

        return bridge_pb2.UploadChunk.FromString(data)

    def proto_sink(fn):
        return grpc.stream_unary_rpc_method_handler(fn, request_deserializer=upload_chunk)

    return grpc.method_handlers_generic_handler("bench.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Sink": grpc.stream_unary_rpc_method_handler(sink),
        "Source": grpc.unary_stream_rpc_method_handler(source),
        "SinkProto": proto_sink(sink_proto),
        "SinkHash": proto_sink(sink_hash),
        "SinkStore": proto_sink(sink_store),
    })


def echo_server_main(sock: str, info: str) -> None:
    """Unix-socket server + TCP server, each with a 32-thread pool and health."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    servers = []
    port = 0
    for target in (f"unix:{sock}", "127.0.0.1:0"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS),
                             options=OPTIONS + [("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((_echo_handlers(str(Path(info).parent / "blobs")),))
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        bound = server.add_insecure_port(target)
        if not target.startswith("unix:"):
            port = bound
        servers.append(server)
    for server in servers:
        server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    Path(info).write_text(json.dumps({"socket": f"unix://{sock}", "grpc": f"127.0.0.1:{port}"}))
    wake = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: wake.set())
    wake.wait()
    for server in servers:
        server.stop(0)


# -- processes -------------------------------------------------------------------
class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call, as the project's client does."""

    def __init__(self, token: str):
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _with(self, details):
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with(details), request)

    intercept_unary_stream = intercept_unary_unary

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with(details), request_iterator)

    intercept_stream_stream = intercept_stream_unary


class Proc:
    """A server subprocess: the daemon or the echo baseline."""

    def __init__(self, kind: str, base: Path, log_level: str = "WARNING"):
        self.kind, self.base = kind, base
        self.sock = str(base / "s.sock")
        self.state = base / "state"
        self.media = base / "media"
        self.state.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(parents=True, exist_ok=True)
        self.info_path = self.state / ("daemon.json" if kind == "daemon" else "echo.json")
        if kind == "daemon":
            cmd = [PY, "-m", "bridge", "serve", "--grpc", "127.0.0.1:0", "--socket", self.sock,
                   "--osc", "", "--state-dir", str(self.state), "--media-root", str(self.media),
                   "--log-level", log_level]
        else:
            cmd = [PY, str(Path(__file__).resolve()), "--echo-server", self.sock, str(self.info_path)]
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> float:
        """Start the process; return seconds from spawn to health SERVING on the socket."""
        t0 = time.perf_counter()
        self.log_path = self.base / f"{self.kind}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)
        serving_at = wait_serving(self.sock, self.proc, t0 + 30)
        elapsed = serving_at - t0
        deadline = time.monotonic() + 10
        while not self.info_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: no {self.info_path}")
            time.sleep(0.005)
        self.info = json.loads(self.info_path.read_text())
        return elapsed

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        if self.info_path.exists():
            self.info_path.unlink()


    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def channel(self, key: str) -> grpc.Channel:
        """A channel to endpoint ``key`` ("socket" or "grpc"); the daemon's TCP needs its token."""
        channel = grpc.insecure_channel(self.info[key].replace("unix://", "unix:"), options=OPTIONS)
        token_file = self.state / "token"
        if self.kind == "daemon" and key == "grpc":
            channel = grpc.intercept_channel(channel, _Bearer(token_file.read_text().strip()))
        return channel

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            return int(next(l for l in handle if l.startswith("VmRSS")).split()[1])


def wait_serving(sock: str, proc: subprocess.Popen, deadline: float) -> float:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    while not os.path.exists(sock):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}; see its log")
        if time.perf_counter() > deadline:
            raise RuntimeError("socket never appeared")
        time.sleep(0.002)
    channel = grpc.insecure_channel(f"unix:{sock}", options=PROBE_OPTIONS)
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter()
            except grpc.RpcError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}; see its log")
            if time.perf_counter() > deadline:
                raise RuntimeError("never SERVING")
            time.sleep(0.002)
    finally:
        channel.close()


# -- statistics ----------------------------------------------------------------------
def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[rank]


def lat(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99)}


def fmt_lat(d: dict | None) -> str:
    if not d:
        return "—"
    return f"p50 {d['p50']:.3f} / p99 {d['p99']:.3f} ms (n={d['n']})"


def timed_pair(fn_a, fn_b, n: int, warmup: int) -> tuple[list[float], list[float]]:
    """Time two calls alternately, so both see the same background load."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    out_a, out_b = [], []
    for _ in range(n):
        for fn, out in ((fn_a, out_a), (fn_b, out_b)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return out_a, out_b


def timed(fn, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# -- 1. round trips --------------------------------------------------------------------
def make_tone(path: Path, seconds: float = 1.0, rate: int = 44100) -> None:
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    mono = 0.1 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([mono, mono], axis=1).astype(np.float32), rate,
                    subtype="PCM_16")


def bench_round_trips(daemon: Proc, echo: Proc, args, rows: list) -> None:
    from bridge.v1 import bridge_pb2 as pb
    from bridge.v1 import bridge_pb2_grpc as pb_grpc

    tone = daemon.media / "tone.wav"
    make_tone(tone)
    n_unary = 300 if args.quick else 1000
    n_hit = 60 if args.quick else 200
    n_real = 10 if args.quick else 30
    payload = os.urandom(256)

    for label, target_key in (("unix socket", "socket"), ("TCP 127.0.0.1", "grpc")):
        dch = daemon.channel(target_key)
        ech = grpc.insecure_channel(echo.info[target_key].replace("unix://", "unix:"), options=OPTIONS)
        stub = pb_grpc.BridgeStub(dch)
        e_unary = ech.unary_unary(ECHO_UNARY)
        e_source = ech.unary_stream(ECHO_SOURCE)

        def job_once(no_cache: bool) -> pb.Job:
            request = pb.SubmitRequest(engine="master", no_cache=no_cache, client="bench")
            request.inputs["audio"].path = str(tone)
            job = stub.Submit(request, timeout=60)
            if job.state >= pb.SUCCEEDED:  # terminal already: a cache hit (what Client.run does)
                return job
            for event in stub.Watch(pb.WatchRequest(job_id=job.id), timeout=120):
                job = event.job
                if job.state >= pb.SUCCEEDED:
                    break
            return job

        if label == "unix socket":
            t = time.perf_counter()
            first = job_once(True)
            first_s = time.perf_counter() - t
            assert first.state == pb.SUCCEEDED, first
            rows.append(("first master job after start (imports the engine), unix",
                         f"{first_s * 1000:.0f} ms (n=1)", "—",
                         "lazy import of bridge.engines.master (numpy/scipy/pyebur128) + DSP"))
        job_id = job_once(False).id  # fills the cache
        log(f"{label}: unary")
        status, echo_u = map(lat, timed_pair(lambda: stub.Status(pb.StatusRequest(), timeout=10),
                                             lambda: e_unary(payload, timeout=10), n_unary, 50))
        getjob = lat(timed(lambda: stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10), n_unary, 50))
        sizes = (len(stub.Status(pb.StatusRequest()).SerializeToString()),
                 len(stub.GetJob(pb.GetJobRequest(job_id=job_id)).SerializeToString()))
        rows.append((f"Status unary, {label}", fmt_lat(status), fmt_lat(echo_u),
                     f"echo: 256 B in/out, calls alternated with Status; Status reply {sizes[0]} B"))
        rows.append((f"GetJob unary, {label}", fmt_lat(getjob), fmt_lat(echo_u),
                     f"GetJob reply {sizes[1]} B"))

        def echo_job():
            e_unary(payload, timeout=10)
            for _ in e_source(b"256:256", timeout=10):
                pass

        log(f"{label}: master jobs")
        hit, echo_j = map(lat, timed_pair(lambda: job_once(False), echo_job, n_hit, 10))
        real_s = timed(lambda: job_once(True), n_real, 2)
        rows.append((f"tiny job, cache hit, {label}", fmt_lat(hit), fmt_lat(echo_j),
                     "Submit answers SUCCEEDED (cached) so no Watch; baseline = unary + 1-msg server stream, alternated"))
        rows.append((f"tiny job, real run (no_cache), {label}", fmt_lat(lat(real_s)), fmt_lat(echo_j),
                     "Submit + Watch until SUCCEEDED; master on a 1 s 44.1 kHz stereo tone"))
        if label == "unix socket":
            n_grow = 500 if args.quick else 2000
            outputs = daemon.state / "outputs"
            before = (daemon.rss_kib(), len(os.listdir(outputs)))
            t = time.perf_counter()
            for _ in range(n_grow):
                job_once(False)
            spent = time.perf_counter() - t
            after = (daemon.rss_kib(), len(os.listdir(outputs)))
            rows.append((f"daemon RSS / output folders after {n_grow} more cache hits, unix",
                         f"RSS {before[0] / 1024:.0f} -> {after[0] / 1024:.0f} MiB; "
                         f"{before[1]} -> {after[1]} folders ({spent / n_grow * 1000:.2f} ms/hit)", "—",
                         "each hit copies the output into a new state/outputs/<id>/ (pruned after --keep-outputs, default 24 h)"))
        dch.close()
        ech.close()


def bench_engine_inprocess(daemon: Proc, rows: list, n: int) -> None:
    """The same master job run in this process without gRPC/scheduler: the DSP floor."""
    from bridge.core.engine import RunContext
    from bridge.core.media import read_audio
    from bridge.engines.master import MasterEngine

    engine = MasterEngine()
    audio = read_audio(daemon.media / "tone.wav")
    params = engine.validate({})
    ctx = RunContext(lambda f, s: None, lambda: False)
    samples = timed(lambda: engine.run(None, {"audio": audio}, params, ctx), n, 2)
    rows.append(("master engine.run() in-process on the same tone (no RPC, no I/O)",
                 fmt_lat(lat(samples)), "—", "the DSP floor of the real-run row"))


# -- 2. throughput -----------------------------------------------------------------------
def bench_throughput(daemon: Proc, echo: Proc, args, rows: list) -> None:
    from bridge.client import Client
    from bridge.v1 import bridge_pb2 as pb
    from bridge.v1 import bridge_pb2_grpc as pb_grpc

    mib = 128 if args.quick else 256
    reps = 1 if args.quick else 3
    size = mib << 20
    blob_file = daemon.media / "random.bin"
    log(f"writing {mib} MiB of random data")
    data = os.urandom(size)
    blob_file.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    chunks = [data[i:i + CHUNK] for i in range(0, size, CHUNK)]

    def rate(seconds: list[float]) -> str:
        med = statistics.median(seconds)
        return f"{size / med / 1e6:.0f} MB/s ({med:.2f} s, median of {len(seconds)})"

    def run_pair(fn_a, fn_b) -> tuple[list[float], list[float]]:
        out_a, out_b = [], []
        for _ in range(reps):  # alternate, so both see the same background load
            out_a += run(fn_a, 1)
            out_b += run(fn_b, 1)
        return out_a, out_b

    def run(fn, count: int = reps) -> list[float]:
        out = []
        for _ in range(count):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return out

    for label, key in (("unix socket", "socket"), ("TCP 127.0.0.1", "grpc")):
        dch = daemon.channel(key)
        ech = grpc.insecure_channel(echo.info[key].replace("unix://", "unix:"), options=OPTIONS)
        stub = pb_grpc.BridgeStub(dch)
        sink = ech.stream_unary(ECHO_SINK)
        source = ech.unary_stream(ECHO_SOURCE)
        log(f"{label}: upload/download {mib} MiB x{reps}")

        def stub_upload(declare: bool = False):
            # Undeclared: the daemon must receive, hash and store every byte. Declared:
            # a stored blob is answered at once (content addressing skips the transfer).
            def gen():
                for i, block in enumerate(chunks):
                    yield pb.UploadChunk(data=block, sha256=sha if declare and i == 0 else "")
            blob = stub.Upload(gen(), timeout=300)
            assert blob.blob == sha and blob.size == size, blob

        def echo_upload():
            assert int(sink(iter(chunks), timeout=300)) == size

        up, eup = run_pair(stub_upload, echo_upload)
        rows.append((f"Upload {mib} MiB, 1 MiB chunks, stub from memory, {label}", rate(up), rate(eup),
                     "server: SHA-256 + write to state dir; echo: count bytes"))
        again = run(lambda: stub_upload(declare=True))
        rows.append((f"Upload of the same {mib} MiB again, sha256 declared, {label}",
                     f"{statistics.median(again) * 1e3:.1f} ms (median of {len(again)})", "—",
                     "the daemon already holds the blob and answers without reading on"))
        if key == "socket":
            # The same client stream of pb.UploadChunk into raw handlers that add one step at a time.
            for method, what in (("SinkProto", "decode UploadChunk, count"),
                                 ("SinkHash", "decode + SHA-256"),
                                 ("SinkStore", "decode + bridge BlobStore.put (SHA-256 + write)")):
                call = ech.stream_unary(f"/bench.Echo/{method}",
                                        request_serializer=pb.UploadChunk.SerializeToString)

                def ladder(call=call):
                    gen = (pb.UploadChunk(data=block, sha256=sha if i == 0 else "")
                           for i, block in enumerate(chunks))
                    assert int(call(gen, timeout=300)) == size

                rows.append((f"  step: raw handler, same pb.UploadChunk client stream: {what}, {label}",
                             "—", rate(run(ladder)), "attributes the Upload gap"))
        if key == "socket":
            stored = Path(daemon.info["state_dir"]) / "blobs" / sha

            def client_upload():
                stored.unlink(missing_ok=True)  # measure a real transfer, not the dedup answer
                client.upload(blob_file)

            with Client(daemon.info["socket"]) as client:
                cu = run(client_upload)
            rows.append((f"Upload {mib} MiB via bridge.client.Client.upload, {label}", rate(cu), rate(eup),
                         "client hashes the whole file first, then reads it again to send"))

        def stub_download():
            got = 0
            for chunk in stub.Download(pb.DownloadRequest(blob=sha), timeout=300):
                got += len(chunk.data)
            assert got == size, got

        def echo_download():
            got = 0
            for piece in source(f"{size}:{CHUNK}".encode(), timeout=300):
                got += len(piece)
            assert got == size

        down, edown = run_pair(stub_download, echo_download)
        rows.append((f"Download {mib} MiB, 1 MiB chunks, stub (discard), {label}", rate(down), rate(edown),
                     "server reads the blob file (page cache); echo yields one in-memory 1 MiB buffer"))
        if key == "socket":
            dest = daemon.base / "download.bin"
            with Client(daemon.info["socket"]) as client:
                cd = run(lambda: client.download("blob:" + sha, dest))
            assert dest.stat().st_size == size
            dest.unlink()
            rows.append((f"Download {mib} MiB via bridge.client.Client.download, {label}", rate(cd),
                         rate(edown), "client writes a .part file and renames it"))
        dch.close()
        ech.close()

    # What the server has to do per upload regardless of the transport.
    t = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    hash_s = time.perf_counter() - t
    scratch = daemon.state / "scratch.bin"
    t = time.perf_counter()
    with open(scratch, "wb") as handle:
        for block in chunks:
            handle.write(block)
    write_s = time.perf_counter() - t
    scratch.unlink()
    rows.append((f"local floor: SHA-256 of {mib} MiB / write {mib} MiB to the state dir",
                 f"{size / hash_s / 1e6:.0f} MB/s / {size / write_s / 1e6:.0f} MB/s", "—",
                 "single thread in the bench process; bounds Upload from above"))
    blob_file.unlink()


# -- 3. start-up -------------------------------------------------------------------------
def wall(cmd: list[str], runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out


IMPORT_PROBE = r"""
import json, sys, time
t = time.perf_counter()
exec(sys.argv[1])
elapsed = time.perf_counter() - t
heavy = %r
print(json.dumps({"s": elapsed, "loaded": [h for h in heavy if h in sys.modules]}))
""" % (HEAVY,)


def import_probe(code: str) -> dict:
    out = subprocess.run([PY, "-c", IMPORT_PROBE, code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def bench_startup(base: Path, rows: list, runs: int = 5) -> None:
    log("start-up: daemon and echo server x%d" % runs)
    d_times, e_times, inner = [], [], []
    for i in range(runs):
        for kind, times in (("daemon", d_times), ("echo", e_times)):
            folder = Path(tempfile.mkdtemp(prefix=f"{kind[0]}{i}", dir=base))
            proc = Proc(kind, folder, log_level="INFO")
            try:
                times.append(proc.start())
            finally:
                proc.stop()
            match = re.search(r"serving in ([0-9.]+) s", proc.log_text())
            if kind == "daemon" and match:
                inner.append(float(match.group(1)))
    med = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms (median of {len(xs)}; min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"
    rows.append(("`serve` process start -> health SERVING over the unix socket", med(d_times), med(e_times),
                 "baseline: this file's echo server (imports grpc + grpc_health, 2 servers, health)"))
    if inner:
        rows.append(("of which Daemon.start() (daemon's own `serving in` log line)", med(inner), "—",
                     "service, sqlite, 2 gRPC servers + health + reflection; the rest is interpreter + imports"))
    help_t = wall([PY, "-m", "bridge", "--help"], runs)
    bare = wall([PY, "-c", "import argparse"], runs)
    rows.append(("`python -m bridge --help` wall time", med(help_t), med(bare),
                 "baseline: `python -c 'import argparse'` (interpreter start)"))
    probes = (
        ("import bridge.cli", "import bridge.cli"),
        ("--help path: import bridge.cli; build_parser()", "import bridge.cli; bridge.cli.build_parser()"),
        ("serve path: Daemon.start's imports",
         "import bridge.cli, bridge.daemon; import bridge.transport.grpc_server, bridge.transport.osc_server"),
        ("first job path: import bridge.engines.master", "import bridge.engines.master"),
    )
    for label, code in probes:
        probe = import_probe(code)
        loaded = ", ".join(probe["loaded"]) or "none"
        rows.append((f"fresh interpreter, {label}", f"{probe['s'] * 1000:.0f} ms", "—",
                     f"heavy modules loaded: {loaded}"))


# -- main ------------------------------------------------------------------------------
def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--echo-server":
        echo_server_main(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB transfers, fewer samples")
    parser.add_argument("--only", choices=("rtt", "throughput", "startup"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ("rtt", "throughput", "startup"))
    sys.path.insert(0, str(ROOT))

    base = Path(tempfile.mkdtemp(prefix="sbb-", dir="/tmp"))  # short: unix socket paths <= 107 bytes
    rows: list[tuple[str, str, str, str]] = []
    started = time.perf_counter()
    load0 = os.getloadavg()
    daemon = echo = None
    try:
        if parts & {"rtt", "throughput"}:
            daemon, echo = Proc("daemon", base / "d"), Proc("echo", base / "e")
            daemon.start()
            echo.start()
            log(f"daemon {daemon.info}, echo {echo.info}")
            if "rtt" in parts:
                bench_round_trips(daemon, echo, args, rows)
                bench_engine_inprocess(daemon, rows, 10 if args.quick else 30)
            if "throughput" in parts:
                bench_throughput(daemon, echo, args, rows)
        if daemon:
            daemon.stop()
        if echo:
            echo.stop()
        if "startup" in parts:
            bench_startup(base, rows)
    finally:
        for proc in (daemon, echo):
            if proc:
                proc.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("| measure | Studio Bridge | raw grpcio baseline | note |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n_{'quick' if args.quick else 'full'} run, {time.perf_counter() - started:.0f} s, "
          f"grpcio {grpc.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f}_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
