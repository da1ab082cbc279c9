"""Recording audio for the page's player (with HTTP Range, so seeking works) and the owner's edit API.

Audio is never a public media URL: every request goes through `open_recording_for`, which applies the same
access rule as everything else.
"""

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import BinaryIO

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.users import signed_in
from quietcast.api_errors import ErrorStatuses, call_translating_errors
from streams import recordings
from streams.api import RECORDING_FIELDS
from streams.services import recording_as_json

CHUNK_BYTES = 64 * 1024
_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class UnsatisfiableRange(Exception):
    pass


# No file is 10^18 bytes long; a longer number (Python refuses to parse over 4,300 digits) means "past any end".
_LARGEST_OFFSET_DIGITS = 18


def _byte_offset(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= _LARGEST_OFFSET_DIGITS else 10**_LARGEST_OFFSET_DIGITS


def requested_byte_range(range_header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte a `Range` header asks for, or None to send the whole file.

    Only a single range is honoured; anything else (several ranges, other units, bad syntax) is ignored, as
    RFC 9110 allows. Raises UnsatisfiableRange when the range lies wholly past the end of the file.
    """
    match = _SINGLE_RANGE.match(range_header.strip().replace(" ", ""))
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # "bytes=-N": the last N bytes
        suffix_length = _byte_offset(last)
        if suffix_length == 0 or size == 0:
            raise UnsatisfiableRange
        return max(size - suffix_length, 0), size - 1
    first_byte = _byte_offset(first)
    last_byte = min(_byte_offset(last), size - 1) if last else size - 1
    if first_byte >= size:
        raise UnsatisfiableRange
    if last_byte < first_byte:
        return None
    return first_byte, last_byte


def _file_chunks(path: Path, first_byte: int, length: int) -> Generator[bytes]:
    with path.open("rb") as audio:
        audio.seek(first_byte)
        while length > 0:
            chunk = audio.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def _open_for_reading(path: Path) -> BinaryIO:
    return path.open("rb")


async def _file_chunks_from_thread(path: Path, first_byte: int, length: int) -> AsyncIterator[bytes]:
    """Under ASGI, a synchronous iterator would be read whole into memory first; hours of audio must stream.

    Each read runs in a worker thread. Only the file is shared with that thread, never a generator: a listener
    who goes away cancels this coroutine while a read may still be running there, and closing a generator that
    another thread is executing raises "generator already executing", whereas a file's close waits for the read.
    """
    audio = await sync_to_async(_open_for_reading, thread_sensitive=False)(path)
    try:
        await sync_to_async(audio.seek, thread_sensitive=False)(first_byte)
        while length > 0:
            chunk = await sync_to_async(audio.read, thread_sensitive=False)(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        audio.close()


@login_required
@require_GET
def recording_audio(request: HttpRequest, recording_id: int) -> HttpResponseBase:
    """The recording's audio for its owner and their friends; `?download=1` saves it as a file, `?format=ogg`
    gives the Ogg/Opus copy (`wav`, the default, is the lossless original)."""
    requested_format = request.GET.get("format", recordings.AudioFormat.WAV.value)
    try:
        audio_format = recordings.AudioFormat(requested_format)
    except ValueError:
        choices = " or ".join(choice.value for choice in recordings.AudioFormat)
        return JsonResponse({"error": f"Unknown audio format {requested_format[:20]!r}: use {choices}."}, status=400)
    try:
        audio = recordings.open_recording_for(signed_in(request), recording_id, audio_format)
    except recordings.RecordingNotFound as error:
        raise Http404(str(error)) from error
    try:
        byte_range = requested_byte_range(request.headers.get("Range", ""), audio.size)
    except UnsatisfiableRange:
        refusal = HttpResponse(status=416, content_type="text/plain")
        refusal["Content-Range"] = f"bytes */{audio.size}"
        refusal["Accept-Ranges"] = "bytes"
        return refusal

    first_byte, last_byte = byte_range or (0, audio.size - 1)
    length = last_byte - first_byte + 1 if audio.size else 0
    read = _file_chunks_from_thread if isinstance(request, ASGIRequest) else _file_chunks
    response = StreamingHttpResponse(
        read(audio.path, first_byte, length),
        status=206 if byte_range else 200,
        content_type=audio.content_type,
    )
    if byte_range:
        response["Content-Range"] = f"bytes {first_byte}-{last_byte}/{audio.size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=request.GET.get("download") == "1", filename=audio.download_name)
        or "inline"
    )
    # Friends-only content: browsers may cache it for seeking, shared caches must not.
    response["Cache-Control"] = "private, max-age=3600"
    return response


class RecordingDetailsSerializer(serializers.Serializer):
    # Lengths and blankness are checked by streams.recordings, so every caller gets the same sentences.
    title = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


RECORDING_RESPONSE = inline_serializer("RecordingSummary", RECORDING_FIELDS)


RECORDING_ERROR_STATUS: ErrorStatuses = {
    recordings.RecordingNotFound: status.HTTP_404_NOT_FOUND,
    recordings.NotRecordingOwner: status.HTTP_403_FORBIDDEN,
    recordings.InvalidRecordingDetails: status.HTTP_400_BAD_REQUEST,
    recordings.MergeRefused: status.HTTP_409_CONFLICT,
}


def _call(operation, *args):
    return call_translating_errors(RECORDING_ERROR_STATUS, operation, *args)


class RecordingDetailView(APIView):
    """The owner renames (title, description) or deletes one of their recordings."""

    @extend_schema(request=RecordingDetailsSerializer, responses=RECORDING_RESPONSE)
    def patch(self, request: Request, recording_id: int) -> Response:
        details = RecordingDetailsSerializer(data=request.data)
        details.is_valid(raise_exception=True)
        recording = _call(
            recordings.rename_recording,
            signed_in(request),
            recording_id,
            details.validated_data.get("title"),
            details.validated_data.get("description"),
        )
        return Response(recording_as_json(recording))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, recording_id: int) -> Response:
        _call(recordings.delete_recording, signed_in(request), recording_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MergeWithPreviousView(APIView):
    """The owner merges a recording with the one just before it (fragments of one evening) into one recording."""

    @extend_schema(operation_id="recordings_merge_previous", request=None, responses={201: RECORDING_RESPONSE})
    def post(self, request: Request, recording_id: int) -> Response:
        merged = _call(recordings.merge_with_previous, signed_in(request), recording_id)
        return Response(recording_as_json(merged), status=status.HTTP_201_CREATED)
