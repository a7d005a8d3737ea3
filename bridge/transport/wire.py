"""Plain-data helpers for bridge.v1 messages, shared by server and client.

Imports nothing from the core, so the client (and every host) stays light.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from ..v1 import bridge_pb2 as pb


def to_struct(data: dict | None) -> struct_pb2.Struct:
    """A JSON-like dict as a Struct; non-finite floats become null."""
    struct = struct_pb2.Struct()
    if data:
        struct.update(_finite(data))
    return struct


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_struct(struct: struct_pb2.Struct) -> dict:
    """A Struct as a dict; whole numbers come back as ints.

    A Struct carries every number as a double, so a seed of 5 or a frame count
    would otherwise read 5.0: a whole number below 2**53 (exact in a double)
    is given back as the int it was sent as. NaN and infinity (which a Struct
    can carry but JSON cannot) come back as floats, for the engine's
    parameter check to refuse by name.
    """
    return {key: _plain(value) for key, value in struct.fields.items()}


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if math.isfinite(number) and number.is_integer() and abs(number) < 2 ** 53:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def job_to_dict(job: pb.Job) -> dict:
    """The client's plain form of a job (the CLI's --json shape builds on it)."""
    return {
        "job_id": job.id,
        "engine": job.engine,
        "model": job.model,
        "state": state_name(job.state),
        "progress": job.progress,
        "stage": job.stage,
        "outputs": [{"path": o.path, "kind": o.kind, "size": o.size, "sha256": o.sha256}
                    for o in job.outputs],
        "report": from_struct(job.report),
        "params": from_struct(job.params),
        "error": {"code": job.error.code, "message": job.error.message} if job.HasField("error") else None,
        "cached": job.cached,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "client": job.client,
    }


def message_to_dict(message) -> dict:
    """A message as plain JSON data, with 64-bit integers as numbers.

    (The protobuf JSON mapping turns int64/uint64 into strings; the CLI's
    JSON should carry byte counts as numbers.)
    """
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return _int64_as_numbers(message.DESCRIPTOR, data)


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def _int64_as_numbers(descriptor, data: dict) -> dict:
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.type in _INT64:
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and field.message_type.full_name.startswith("bridge."):
            items = value if isinstance(value, list) else [value]
            for item in items:
                _int64_as_numbers(field.message_type, item)
    return data


def state_name(value: int) -> str:
    """bridge.v1 JobState number -> the lower-case name the CLI prints."""
    return pb.JobState.Name(value).lower()
