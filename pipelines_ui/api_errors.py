"""Errors of the REST API: one JSON shape for every failure, never an HTML page or a traceback.

Every error body is `{"detail": "one sentence", "errors": [{"node", "field", "message"}]}`;
`errors` is empty when nothing more precise than `detail` can be said. DRF's own exceptions,
spec problems (SpecInvalid), oversized bodies and an unreachable database all end up here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from runner.spec import SpecInvalid

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 5


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the object."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than the limit of {limit} bytes "
                         "(DATA_UPLOAD_MAX_MEMORY_SIZE).")


def error_body(detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": errors or []}


def flatten(data: Any, path: str = "") -> list[dict[str, Any]]:
    """DRF's nested validation errors as a flat list naming each field by its path."""
    if isinstance(data, Mapping):
        found = []
        for key, value in data.items():
            name = str(key) if key != "non_field_errors" else ""
            found += flatten(value, f"{path}.{name}" if path and name else path or name)
        return found
    if isinstance(data, list):
        if all(not isinstance(item, Mapping | list) for item in data):
            return [{"node": None, "field": path or None, "message": str(item)} for item in data]
        found = []
        for i, item in enumerate(data):
            found += flatten(item, f"{path}[{i}]")
        return found
    return [{"node": None, "field": path or None, "message": str(data)}]


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more if parts else "Invalid input."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, extended: every error body has `detail` and `errors`."""
    if isinstance(exc, SpecInvalid):
        return Response(exc.to_dict(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, OperationalError):
        log.warning("database unavailable during %s", context.get("request"), exc_info=True)
        try:
            set_rollback()
        except Exception:  # the connection may be gone; nothing left to roll back then
            pass
        return Response(error_body("The database is unavailable; retry shortly."),
                        status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(DB_RETRY_AFTER_S)})
    if isinstance(exc, ProtectedError):
        exc = Conflict("Other objects still depend on this one; remove them first.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten(response.data)
        response.data = error_body(_summary(errors), errors)
    elif isinstance(response.data, Mapping) and "detail" in response.data:
        response.data = error_body(str(response.data["detail"]),
                                   list(response.data.get("errors", [])))
    else:
        errors = flatten(response.data)
        response.data = error_body(_summary(errors), errors)
    return response
