"""The OpenAPI schema tells the whole truth: every error status an operation can answer, each with the one error
shape `{"error": "..."}`. The fuzz test (tests/test_api_fuzz.py) checks the API against this, so an operation
that starts answering an undocumented status fails the suite."""

from typing import Any

ERROR_DESCRIPTIONS = {
    400: "The request is malformed or invalid; the error says what to change.",
    401: "Not signed in, or the token is wrong, expired or revoked.",
    403: "Not allowed: not the owner, not a friend, or the recording quota is used up.",
    404: "No such user or recording, or nothing to act on.",
    415: "The body is neither JSON nor a form (urlencoded or multipart), or cannot be read as one.",
    413: "The upload is larger than DENOISE_UPLOAD_MAX_MB.",
    409: "Conflicts with the current state (already live, not live, not sending yet).",
    429: "Too many requests or connections; `Retry-After` says when to try again where it applies.",
    503: "Temporarily unavailable (noise removal at capacity, the message service down, too many files waiting to "
    "be denoised, the server carrying the stream's audio not answering); nothing was changed.",
}

# Error statuses per operation, besides the success statuses the views declare.
ERRORS_BY_OPERATION: dict[str, tuple[int, ...]] = {
    "auth_token_create": (400, 401, 415, 429),
    "auth_logout_create": (401,),
    "auth_logout_all_create": (401,),
    "users_search_retrieve": (400, 401, 429),
    "friends_retrieve": (401,),
    "friends_requests_retrieve": (401,),
    "friends_request_create": (400, 401, 404, 415),
    "accept_request": (400, 401, 404, 415),
    "reject_request": (400, 401, 404, 415),
    "cancel_request": (400, 401, 404, 415),
    "remove_friend": (400, 401, 404, 415),
    "stream_start_create": (400, 401, 403, 409, 415, 503),
    "stream_stop_create": (400, 401, 409, 415, 503),
    "stream_denoise_create": (400, 401, 409, 415, 503),
    "stream_mute_create": (400, 401, 409, 415, 503),
    "stream_offer_create": (400, 401, 404, 409, 415, 503),
    "stream_listener_offer_create": (400, 401, 403, 404, 409, 415, 429, 503),
    "stream_status_retrieve": (401, 403, 404),
    "recordings_mine": (400, 401),
    "recordings_of_user": (400, 401, 403, 404),
    "recordings_partial_update": (400, 401, 403, 404, 415),
    "recordings_destroy": (401, 403, 404),
    "recordings_merge_previous": (401, 403, 404, 409),
    "ice_servers_retrieve": (401,),
    "denoise_file": (400, 401, 413, 415, 503),
    "denoise_job": (400, 401, 404, 413, 503),
    "recordings_upload": (400, 401, 403, 413, 415, 503),
}

ERROR_COMPONENT = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "A sentence a person understands."}},
    "required": ["error"],
}


def document_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the error responses of ERRORS_BY_OPERATION to every operation.

    An operation missing from the table is an error, so a new endpoint cannot ship with an incomplete schema.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            operation_id = operation.get("operationId")
            if operation_id not in ERRORS_BY_OPERATION:
                raise KeyError(f"{method.upper()} {path} ({operation_id}): list its error statuses in {__name__}")
            for status in ERRORS_BY_OPERATION[operation_id]:
                operation["responses"][str(status)] = {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": reference}},
                }
    return result
