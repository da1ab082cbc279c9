"""One shape for every API error: `{"error": "<a sentence a person understands>"}`."""

from collections.abc import Callable, Mapping
from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(exceptions.APIException):
    """A domain error with its own status code and message, e.g. `ApiError(409, "Already live")`."""

    def __init__(self, status_code: int, message: str, **extra: Any) -> None:
        super().__init__(detail=message)
        self.status_code = status_code
        self.extra = extra


def _first_message(detail: Any, field: str | None = None) -> str:
    """Flatten DRF's nested error details into the first readable sentence, naming the field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_message(value, None if key in ("non_field_errors", "detail") else key)
        return "Invalid request."
    if isinstance(detail, list):
        return _first_message(detail[0], field) if detail else "Invalid request."
    message = str(detail)
    return f"{field}: {message}" if field else message


def json_error_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ParseError):
        message = "The request body is not valid JSON." if "JSON" in str(exc.detail) else str(exc.detail)
    else:
        message = _first_message(response.data)
    body: dict[str, Any] = {"error": message}
    body.update(getattr(exc, "extra", {}))
    response.data = body
    return response


# Which HTTP status each domain error becomes.
ErrorStatuses = Mapping[type[Exception], int]


def call_translating_errors(statuses: ErrorStatuses, operation: Callable[..., Any], *args: Any) -> Any:
    """Run a domain operation; a domain error listed in `statuses` becomes an ApiError with that status code.

    Domain errors carry a message written for the person who asked, so it becomes the API's error text as is.
    """
    try:
        return operation(*args)
    except tuple(statuses) as error:
        status_code = next(code for kind, code in statuses.items() if isinstance(error, kind))
        raise ApiError(status_code, str(error)) from error


__all__ = ["ApiError", "ErrorStatuses", "call_translating_errors", "json_error_handler"]
