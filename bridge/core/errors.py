"""The one error hierarchy of Studio Bridge.

Library code raises these; each edge (gRPC, OSC, CLI) maps them to its own
form in exactly one place. Every message says what was wrong, what exists or
is allowed, and what to do.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the daemon reports to a client.

    Attributes:
        code: a stable, machine-readable code (``invalid_argument``, ...).
        message: one human sentence or three: what, what exists, what to do.
    """

    code = "internal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class InvalidArgument(BridgeError):
    """A parameter, preset or request field is malformed or out of range."""

    code = "invalid_argument"


class NotFound(BridgeError):
    """A job, engine, model, blob or file does not exist."""

    code = "not_found"


class PermissionDenied(BridgeError):
    """Outside the media roots, unwritable folder, or missing token."""

    code = "permission_denied"


class Unauthenticated(BridgeError):
    """A token is configured and the request did not carry it."""

    code = "unauthenticated"


class MediaError(BridgeError):
    """The input is not decodable media, or its content cannot be processed."""

    code = "bad_media"


class Busy(BridgeError):
    """The queue is full; try again when a job finishes."""

    code = "busy"


class ResourceExhausted(BridgeError):
    """A model does not fit in the memory budget even after eviction."""

    code = "resource_exhausted"


class Unavailable(BridgeError):
    """An engine's dependencies are missing, or the daemon is not reachable."""

    code = "unavailable"


class Cancelled(BridgeError):
    """The job was cancelled by its client."""

    code = "cancelled"


class Interrupted(BridgeError):
    """The daemon stopped while the job was running."""

    code = "interrupted"


class Internal(BridgeError):
    """A bug: anything not anticipated. The message carries the exception."""

    code = "internal"


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        PermissionDenied,
        Unauthenticated,
        MediaError,
        Busy,
        ResourceExhausted,
        Unavailable,
        Cancelled,
        Interrupted,
        Internal,
    )
}


def from_code(code: str, message: str) -> BridgeError:
    """Rebuild an error from its wire form (used by the client)."""
    return ERRORS_BY_CODE.get(code, BridgeError)(message)
