"""gRPC transport: bridge.v1.Bridge, health and reflection, translated onto the Service.

Nothing here touches a model or a file's content: each method converts the
request, calls the service and converts the answer. Errors map to status
codes in exactly one place (``_STATUS``). The unix socket is created mode
0600; TCP requests carry ``authorization: Bearer <token>`` when a token is set.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import socket
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..core.engine import Engine, Param
from ..core.errors import BridgeError, Internal, PermissionDenied, Unavailable
from ..core.jobs import JobRecord, JobState
from ..core.service import Service
from ..v1 import bridge_pb2 as pb
from ..v1 import bridge_pb2_grpc as pb_grpc
from .wire import from_struct, to_struct
from google.protobuf import json_format, struct_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Bridge"].full_name
STATE_TO_PB = {state: pb.JobState.Value(state.name) for state in JobState}
PB_TO_STATE = {value: state for state, value in STATE_TO_PB.items()}
ERROR_CODE_KEY = "bridge-error-code"
MAX_MESSAGE_BYTES = 64 << 20  # one message (an Upload chunk); uploads send 1 MiB chunks

_STATUS = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "bad_media": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "busy": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.FAILED_PRECONDITION,
    "cancelled": grpc.StatusCode.CANCELLED,
    "interrupted": grpc.StatusCode.ABORTED,
    "internal": grpc.StatusCode.INTERNAL,
}


def _translate_errors(method):
    """Map BridgeError (and bugs) to a status code plus the bridge error code."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except BridgeError as exc:
            _abort(context, exc)
        except grpc.RpcError:  # the client's request stream failed: gone, or a chunk over the limit
            _stream_failed(method.__name__, context)
        except Exception as exc:  # a bug: report it as internal, keep serving
            log.exception("%s failed", method.__name__)
            _abort(context, Internal(f"internal error in {method.__name__}: {type(exc).__name__}: {exc}"))

    return wrapper


def _translate_stream_errors(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            yield from method(self, request, context)
        except BridgeError as exc:
            _abort(context, exc)
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            _abort(context, Internal(f"internal error in {method.__name__}: {type(exc).__name__}: {exc}"))

    return wrapper


MAX_MESSAGE = 2000  # characters: status details travel in metadata, limited to 8 KiB


def _stream_failed(name: str, context) -> None:
    """grpc already answered the client (CANCELLED, RESOURCE_EXHAUSTED): one quiet line."""
    log.info("%s: the request stream ended early (client gone, or a message over the %d MiB limit)",
             name, MAX_MESSAGE_BYTES >> 20)
    context.abort(grpc.StatusCode.CANCELLED, "the request stream ended early")


def _abort(context, exc: BridgeError):
    context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
    message = exc.message if len(exc.message) <= MAX_MESSAGE else exc.message[:MAX_MESSAGE - 3] + "..."
    context.abort(_STATUS.get(exc.code, grpc.StatusCode.UNKNOWN), message)


class BridgeServicer(pb_grpc.BridgeServicer):
    """bridge.v1.Bridge onto ``Service``."""

    def __init__(self, service: Service):
        self.service = service

    @_translate_errors
    def Submit(self, request, context):
        inputs = {name: _ref(ref) for name, ref in request.inputs.items()}
        record = self.service.submit(
            request.engine, inputs, from_struct(request.params), request.out_dir,
            request.model, request.keep_alive if request.HasField("keep_alive") else None,
            request.no_cache, request.client or context.peer())
        return job_to_pb(record)

    @_translate_stream_errors
    def Watch(self, request, context):
        for seq, record in self.service.watch(request.job_id, request.after_seq,
                                              alive=context.is_active):
            yield pb.JobEvent(seq=seq, job=job_to_pb(record))

    @_translate_errors
    def Cancel(self, request, context):
        return job_to_pb(self.service.cancel(request.job_id))

    @_translate_errors
    def GetJob(self, request, context):
        return job_to_pb(self.service.get_job(request.job_id))

    @_translate_errors
    def ListJobs(self, request, context):
        states = [PB_TO_STATE[s] for s in request.states if s in PB_TO_STATE]
        jobs = self.service.list_jobs(request.limit, states)
        return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs])

    @_translate_errors
    def Upload(self, request_iterator, context):
        first = {}

        def chunks():
            for chunk in request_iterator:
                if not first:
                    first["sha256"] = chunk.sha256
                yield chunk.data

        iterator = chunks()
        head = next(iterator, b"")  # read the first chunk to learn the declared hash
        sha, size = self.service.upload(_prepend(head, iterator), first.get("sha256", ""))
        return pb.Blob(blob=sha, size=size)

    @_translate_stream_errors
    def Download(self, request, context):
        handle, size = self.service.open_download(request.path, request.blob)
        step = min(request.chunk_size or (1 << 20), MAX_MESSAGE_BYTES // 2)
        with handle:
            first = True
            while context.is_active():
                data = handle.read(step)
                if not data and not first:
                    return
                yield pb.DownloadChunk(data=data, total_size=size if first else 0)
                first = False
                if not data:
                    return

    @_translate_errors
    def ListEngines(self, request, context):
        return pb.ListEnginesResponse(engines=[engine_to_pb(*e) for e in self.service.engines()])

    @_translate_errors
    def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[model_to_pb(m) for m in self.service.models()])

    @_translate_errors
    def LoadModel(self, request, context):
        keep = request.keep_alive if request.HasField("keep_alive") else None
        return model_to_pb(self.service.load_model(request.name, keep))

    @_translate_errors
    def UnloadModel(self, request, context):
        return model_to_pb(self.service.unload_model(request.name))

    @_translate_errors
    def Status(self, request, context):
        status = self.service.status()
        resident = [model_to_pb(m) for m in status.pop("resident")]
        return pb.StatusResponse(resident=resident, **status)


def _prepend(head: bytes, rest):
    if head:
        yield head
    yield from rest


def _ref(ref: pb.MediaRef) -> dict:
    out = {ref.WhichOneof("source"): getattr(ref, ref.WhichOneof("source"))} if ref.WhichOneof("source") else {}
    if ref.filename:
        out["filename"] = ref.filename
    return out


# -- records -> messages ---------------------------------------------------------
def job_to_pb(record: JobRecord) -> pb.Job:
    job = pb.Job(
        id=record.id, engine=record.engine, model=record.model,
        state=STATE_TO_PB[record.state], progress=record.progress, stage=record.stage,
        created_at=record.created_at, started_at=record.started_at,
        finished_at=record.finished_at, cached=record.cached, client=record.client,
        outputs=[pb.Output(path=o["path"], kind=o["kind"], size=o.get("size", 0),
                           sha256=o.get("sha256", "")) for o in record.outputs],
    )
    job.report.CopyFrom(to_struct(record.report))
    job.params.CopyFrom(to_struct(record.params))
    if record.error:
        job.error.CopyFrom(pb.Error(code=record.error["code"], message=record.error["message"]))
    return job


def param_to_pb(param: Param) -> pb.ParamSpec:
    spec = pb.ParamSpec(name=param.name, type=param.type, description=param.description,
                        choices=list(param.choices), unit=param.unit)
    if param.default is not None:
        spec.default.CopyFrom(struct_pb2.Value())
        json_format.ParseDict(param.default, spec.default)
    if param.minimum is not None:
        spec.minimum = param.minimum
    if param.maximum is not None:
        spec.maximum = param.maximum
    return spec


def engine_to_pb(name: str, engine: Engine | None, error: str) -> pb.Engine:
    if engine is None:
        return pb.Engine(name=name, available=False, unavailable_reason=error)
    return pb.Engine(
        name=name, kind=engine.kind.value, version=engine.version,
        description=engine.description, available=True,
        params=[param_to_pb(p) for p in engine.describe_params()],
        inputs=[pb.InputSpec(name=i.name, kind=i.kind, required=i.required,
                             description=i.description) for i in engine.inputs],
        models=[m.name for m in engine.models()], default_model=engine.default_model(),
    )


def model_to_pb(model: dict) -> pb.Model:
    return pb.Model(**{k: v for k, v in model.items() if k in pb.Model.DESCRIPTOR.fields_by_name
                       and v is not None})



# -- servers ----------------------------------------------------------------------
class _TokenInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` on every call but health checks."""

    def __init__(self, token: str, where: str = ""):
        self._expected = f"Bearer {token}"
        where = f"; the daemon's user finds it in {where}" if where else ""

        def deny(request, context):
            context.set_trailing_metadata(((ERROR_CODE_KEY, "unauthenticated"),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "this daemon requires a token over TCP: send metadata 'authorization: "
                          "Bearer <token>' (studio-bridge reads STUDIO_BRIDGE_TOKEN, or the file "
                          f"named by STUDIO_BRIDGE_TOKEN_FILE or --token-file){where}")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, details):
        if details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        metadata = dict(details.invocation_metadata or ())
        if hmac.compare_digest(metadata.get("authorization", ""), self._expected):
            return continuation(details)
        return self._deny


class GrpcServers:
    """The unix-socket server and the TCP server, sharing one servicer.

    Two servers because the socket is protected by its file mode and needs no
    token, while TCP needs one when configured.
    """

    def __init__(self, service: Service, tcp: str, socket_path: str, token: str = "",
                 workers: int = 32, token_file: str = ""):
        self.health = health.HealthServicer()
        self.servicer = BridgeServicer(service)
        self.tcp_port = 0
        self.socket_path = socket_path
        self._owns_socket = False  # never remove a socket another daemon is serving on
        self._servers = []
        try:
            if socket_path:
                server = self._server(workers, None)
                self._servers.append(server)
                self._bind_socket(server, socket_path)
            if tcp:
                server = self._server(workers, _TokenInterceptor(token, token_file) if token else None)
                self._servers.append(server)
                self.tcp_port = _bind_tcp(server, tcp)
        except BaseException:
            self.stop(0)
            raise

    def _server(self, workers: int, interceptor) -> grpc.Server:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sb-grpc"),
                             interceptors=[interceptor] if interceptor else [],
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.so_reuseport", 0)])
        pb_grpc.add_BridgeServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        return server

    def _bind_socket(self, server: grpc.Server, path: str) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            _refuse_if_live(target)
            target.unlink()
        old = os.umask(0o177)  # the socket is born 0600: no window for others
        try:
            bound = server.add_insecure_port(f"unix:{target}")
        except RuntimeError:
            bound = 0
        finally:
            os.umask(old)
        if not bound:
            raise PermissionDenied(f"cannot create the socket {target}; pick another with --socket PATH")
        self._owns_socket = True

    def start(self) -> None:
        for server in self._servers:
            server.start()
        if self.socket_path:
            os.chmod(self.socket_path, 0o600)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        self.health.enter_graceful_shutdown()
        events = [server.stop(grace) for server in self._servers]
        for event in events:
            event.wait(grace + 1)
        if self._owns_socket and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)


def _bind_tcp(server: grpc.Server, addr: str) -> int:
    try:
        port = server.add_insecure_port(addr)
    except RuntimeError:  # grpcio raises on a failed bind; older versions return 0
        port = 0
    if not port:
        raise Unavailable(f"cannot listen for gRPC on {addr}: the port is taken (another daemon?) or "
                          f"the address is not on this machine; pick another with --grpc HOST:PORT")
    return port


def _refuse_if_live(path: Path) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return  # stale socket of a daemon that died: safe to replace
    finally:
        probe.close()
    raise Unavailable(f"a daemon already listens on {path}; stop it (SIGTERM, or Ctrl-C in its "
                      f"terminal) or use another --socket")
