"""The one client of the Studio Bridge daemon.

The CLI and every host adapter use this module, nothing deeper. It finds the
daemon from an explicit address, ``STUDIO_BRIDGE_ADDR`` (``unix:///path`` or
``host:port``) or the default socket, passes media by path when the daemon
is on this machine and uploads/downloads it when it is not, and turns gRPC
errors back into the project's errors with their codes.

    from bridge.client import Client
    with Client.from_environment() as client:
        job = client.run("master", {"audio": "song.wav"}, {"preset": "streaming"}, out_dir="out")
        print(job["outputs"][0]["path"], job["report"]["after"]["integrated_lufs"])
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import grpc

from .core.config import ENV_ADDR, ENV_TOKEN, ENV_TOKEN_FILE, default_addr, is_loopback, \
    state_dir_default
from .core.errors import BridgeError, Internal, InvalidArgument, Unavailable, from_code
from .transport.wire import job_to_dict, message_to_dict, to_struct
from .v1 import bridge_pb2 as pb
from .v1 import bridge_pb2_grpc as pb_grpc

CHUNK = 1 << 20
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


class Client:
    """A connection to one daemon.

    Args:
        addr: ``unix:///path/to.sock`` or ``host:port``; default: environment.
        token: sent as ``authorization: Bearer <token>``; None finds it:
            ``STUDIO_BRIDGE_TOKEN``, else the file ``STUDIO_BRIDGE_TOKEN_FILE``
            names, else the default daemon's own ``<state-dir>/token`` when
            ``addr`` is that daemon's TCP address (``find_token``).
        timeout: seconds for unary calls (streams have none).
        local: whether the daemon reads this machine's files; None = infer
            from the address (unix socket or loopback).
    """

    def __init__(self, addr: str | None = None, token: str | None = None, timeout: float = 30.0,
                 local: bool | None = None):
        self._local = local
        self.addr = addr or os.environ.get(ENV_ADDR) or default_addr()
        token = token if token is not None else find_token(self.addr)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            self.addr, options=[("grpc.max_receive_message_length", 64 << 20),
                                ("grpc.max_send_message_length", 64 << 20)])
        self._stub = pb_grpc.BridgeStub(self._channel)

    @classmethod
    def from_environment(cls) -> "Client":
        return cls()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    @property
    def is_local(self) -> bool:
        """True when the daemon shares this machine's files (paths cross as paths)."""
        if self._local is not None:
            return self._local
        if self.addr.startswith("unix:"):
            return True
        host = self.addr.rpartition(":")[0].strip("[]")
        return is_loopback(host)

    # -- jobs ----------------------------------------------------------------
    def submit(self, engine: str, inputs: dict[str, str], params: dict | None = None,
               out_dir: str = "", model: str = "", keep_alive: float | None = None,
               no_cache: bool = False, client: str = "") -> dict:
        """Submit a job; returns it at once (queued, or done if cached).

        ``inputs`` maps input names to paths, or to ``("blob:<sha256>",
        filename)`` for uploaded media.
        """
        request = pb.SubmitRequest(engine=engine, model=model, out_dir=_abs(out_dir),
                                   no_cache=no_cache, client=client)
        for name, ref in inputs.items():
            if isinstance(ref, tuple):
                request.inputs[name].blob = ref[0].removeprefix("blob:")
                request.inputs[name].filename = ref[1]
            else:
                request.inputs[name].path = _abs(ref)
        _check_finite(params or {})
        request.params.CopyFrom(to_struct(params or {}))
        if keep_alive is not None:
            request.keep_alive = keep_alive
        return job_to_dict(self._call(self._stub.Submit, request))

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[dict]:
        """Yield the job's snapshots until it ends."""
        try:
            for event in self._stub.Watch(pb.WatchRequest(job_id=job_id, after_seq=after_seq),
                                          metadata=self._metadata):
                yield {**job_to_dict(event.job), "seq": event.seq}
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def wait(self, job_id: str, on_event: Callable[[dict], None] | None = None) -> dict:
        """Follow a job to its end (reconnecting if the stream drops); return it."""
        seq, job = 0, None
        while True:
            try:
                for job in self.watch(job_id, seq):
                    seq = job["seq"]
                    if on_event:
                        on_event(job)
                    if job["state"] in TERMINAL:
                        return job
            except Unavailable:
                time.sleep(0.5)  # the stream broke (daemon restart?); ask again
            job = self.get_job(job_id)
            if job["state"] in TERMINAL:
                return job

    def run(self, engine: str, inputs: dict[str, str], params: dict | None = None,
            out_dir: str = "", on_event: Callable[[dict], None] | None = None, **options) -> dict:
        """Submit, follow to the end, and return the finished job.

        A remote daemon gets the inputs uploaded and the outputs downloaded
        into ``out_dir``; a local one reads and writes the paths itself.
        """
        if not self.is_local:
            return self._run_remote(engine, inputs, params, out_dir, on_event, **options)
        job = self.submit(engine, inputs, params, out_dir, **options)
        if on_event:
            on_event(job)
        return job if job["state"] in TERMINAL else self.wait(job["job_id"], on_event)

    def _run_remote(self, engine, inputs, params, out_dir, on_event, **options) -> dict:
        refs = {name: ref if isinstance(ref, tuple) else ("blob:" + self.upload(ref), Path(ref).name)
                for name, ref in inputs.items()}  # a (blob, filename) pair is uploaded already
        job = self.submit(engine, refs, params, "", **options)
        job = job if job["state"] in TERMINAL else self.wait(job["job_id"], on_event)
        folder = Path(out_dir or ".")
        folder.mkdir(parents=True, exist_ok=True)
        for output in job["outputs"]:
            local = folder / Path(output["path"]).name
            self.download(output["path"], local)
            output["path"] = str(local.resolve())
        return job

    def cancel(self, job_id: str) -> dict:
        return job_to_dict(self._call(self._stub.Cancel, pb.CancelRequest(job_id=job_id)))

    def get_job(self, job_id: str) -> dict:
        return job_to_dict(self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id)))

    def list_jobs(self, limit: int = 50) -> list[dict]:
        reply = self._call(self._stub.ListJobs, pb.ListJobsRequest(limit=limit))
        return [job_to_dict(job) for job in reply.jobs]

    # -- media ---------------------------------------------------------------
    def upload(self, path: str | os.PathLike) -> str:
        """Upload a file in chunks; returns its blob id (SHA-256)."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
        sha = digest.hexdigest()

        def chunks():
            with open(path, "rb") as handle:
                first = True
                for block in iter(lambda: handle.read(CHUNK), b""):
                    yield pb.UploadChunk(data=block, sha256=sha if first else "",
                                         filename=Path(path).name if first else "")
                    first = False

        blob = self._call(self._stub.Upload, chunks()).blob
        if blob != sha:
            raise Internal(f"upload of '{path}' stored as {blob}, expected {sha}; upload again")
        return blob

    def download(self, source: str, dest: str | os.PathLike) -> Path:
        """Download a daemon-side path (or ``blob:<id>``) to ``dest`` atomically."""
        request = pb.DownloadRequest(blob=source[5:]) if source.startswith("blob:") \
            else pb.DownloadRequest(path=source)
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with open(tmp, "wb") as handle:
                for chunk in self._stub.Download(request, metadata=self._metadata):
                    handle.write(chunk.data)
            os.replace(tmp, dest)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return dest

    # -- engines, models, status ----------------------------------------------
    def engines(self) -> list[dict]:
        return [message_to_dict(e) for e in self._call(self._stub.ListEngines, pb.ListEnginesRequest()).engines]

    def models(self) -> list[dict]:
        return [message_to_dict(m) for m in self._call(self._stub.ListModels, pb.ListModelsRequest()).models]

    def load_model(self, name: str, keep_alive: float | None = None) -> dict:
        request = pb.LoadModelRequest(name=name)
        if keep_alive is not None:
            request.keep_alive = keep_alive
        return message_to_dict(self._call(self._stub.LoadModel, request))

    def unload_model(self, name: str) -> dict:
        return message_to_dict(self._call(self._stub.UnloadModel, pb.UnloadModelRequest(name=name)))

    def status(self) -> dict:
        return message_to_dict(self._call(self._stub.Status, pb.StatusRequest()))

    def health(self, timeout: float = 2.0) -> str:
        """"SERVING", "NOT_SERVING", ...; raises Unavailable if nothing answers."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout,
                               metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_until_serving(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health(timeout=1.0) == "SERVING":
                    return
            except BridgeError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    # -- plumbing ---------------------------------------------------------------
    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> BridgeError:
        code = dict(exc.trailing_metadata() or ()).get("bridge-error-code")
        if code:
            return from_code(code, exc.details())
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(
                f"no Studio Bridge daemon answers at {self.addr} ({exc.details()}); start one "
                f"with `studio-bridge serve`, or point {ENV_ADDR} / --addr at it")
        return from_code(exc.code().name.lower(), exc.details() or str(exc.code()))


def find_token(addr: str) -> str:
    """The token to show the daemon at ``addr``, when none was given (see ``Client``).

    The daemon's own token file is sent only to that daemon: never over a unix
    socket (its file mode is the guard; no token needed), only to the TCP
    address its ``daemon.json`` names, and - where the system says whose a
    listening socket is (Linux) - only if that port's listener is this user's.
    Otherwise another user who took the port while the daemon was down would
    collect the token.
    """
    from .core.state import TOKEN_FILE, listener_is_mine, read_token

    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN]
    if os.environ.get(ENV_TOKEN_FILE):
        return read_token(os.environ[ENV_TOKEN_FILE])
    state = state_dir_default()
    own = state / TOKEN_FILE
    if addr.startswith("unix:") or not os.access(own, os.R_OK) or addr != _daemon_tcp(state):
        return ""
    host, _, port = addr.rpartition(":")
    if not port.isdigit() or listener_is_mine(int(port)) is False:
        return ""
    try:
        return read_token(own)
    except InvalidArgument:
        return ""


def _daemon_tcp(state: Path) -> str:
    """The TCP address the daemon of ``state`` says it listens on ("" if none)."""
    import json

    try:
        return json.loads((state / "daemon.json").read_text()).get("grpc", "")
    except (OSError, ValueError, AttributeError):
        return ""


def _check_finite(params: dict) -> None:
    """NaN and infinity have no JSON form; refuse them here, not silently drop them."""
    for name, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"parameter '{name}' is {value}; give a finite number")


def _abs(path: str | os.PathLike) -> str:
    return str(Path(path).expanduser().absolute()) if path else ""
