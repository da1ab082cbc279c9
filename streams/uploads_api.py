"""Denoise a file, and keep an upload as a recording: multipart `audio` in, a 48 kHz mono WAV (or a job) out.

Short files (up to DENOISE_UPLOAD_SYNC_SECONDS of audio) are answered in the request; longer ones, or ones that
wait behind others, get 202 and a job that only their creator can poll. The work runs in the server's
low-priority file worker, never in the request thread, the event loop or the live denoise workers.
"""

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.users import signed_in
from quietcast.api_errors import ApiError
from streams import media, services
from streams.api import RECORDING_FIELDS
from streams.recordings import TITLE_MAX_LENGTH

# How soon a client told "busy" should try again.
RETRY_AFTER_S = 30
# Multipart framing around the file: a request larger than the file limit plus this is refused unread.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

JOB_FIELDS: dict[str, serializers.Field] = {
    "id": serializers.CharField(),
    "status": serializers.ChoiceField(choices=["queued", "running"]),
    "progress": serializers.FloatField(help_text="0 to 1"),
    "duration": serializers.FloatField(allow_null=True, help_text="seconds of audio, once decoded"),
    "url": serializers.CharField(help_text="poll this"),
}
JOB = inline_serializer("DenoiseJob", JOB_FIELDS)
WAV = OpenApiResponse(OpenApiTypes.BINARY, description="The audio as 48 kHz mono 16-bit WAV (audio/wav).")


class DenoiseFileSerializer(serializers.Serializer):
    audio = serializers.FileField(
        allow_empty_file=True, help_text="WAV, FLAC, Ogg/Opus, MP3 or WebM/Opus (as browsers record it)"
    )


class KeepUploadSerializer(DenoiseFileSerializer):
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH)
    denoise = serializers.BooleanField(default=True)


# What each way an upload is refused becomes.
REJECTION_STATUS = {
    media.TOO_BIG: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    media.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _rejection(error: media.UploadRejected) -> ApiError:
    return ApiError(REJECTION_STATUS.get(error.reason, status.HTTP_400_BAD_REQUEST), str(error))


def _busy(error: media.UploadQueueFull) -> ApiError:
    busy = ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(error))
    busy.wait = RETRY_AFTER_S  # type: ignore[attr-defined]  # DRF's exception handler turns it into Retry-After
    return busy


def _refuse_oversized(request: Request) -> None:
    """Refuse a body that cannot fit the limit before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.DENOISE_UPLOAD_MAX_MB * 1e6 + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"The file is larger than {settings.DENOISE_UPLOAD_MAX_MB:g} MB."
        )


def _submit(request: Request, serializer_class: type[DenoiseFileSerializer]) -> tuple[Any, dict[str, Any]]:
    _refuse_oversized(request)
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    audio: UploadedFile = body.validated_data["audio"]
    try:
        job = services.denoise_upload(
            signed_in(request),
            audio.chunks(),
            denoise=body.validated_data.get("denoise", True),
            keep_title=body.validated_data.get("title"),
        )
        done = media.wait_for_upload(job)
    except media.UploadRejected as error:
        raise _rejection(error) from error
    except media.UploadQueueFull as error:
        raise _busy(error) from error
    except services.RecordingQuotaFull as error:
        raise ApiError(status.HTTP_403_FORBIDDEN, str(error)) from error
    return (job if done else None), _job_json(job)


def _job_json(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.state,
        "progress": round(job.progress, 3),
        "duration": None if job.duration_s is None else round(job.duration_s, 3),
        "url": f"/api/denoise/jobs/{job.id}/",
    }


def _wav(job: Any) -> FileResponse:
    return FileResponse(job.output_path.open("rb"), content_type="audio/wav", filename="denoised.wav")


class DenoiseFileView(APIView):
    """`POST /api/denoise/`: the file's audio, denoised by the same engine and settings as live streams."""

    @extend_schema(
        operation_id="denoise_file",
        request={"multipart/form-data": DenoiseFileSerializer},
        responses={(200, "audio/wav"): WAV, (202, "application/json"): JOB},
    )
    def post(self, request: Request) -> Response | FileResponse:
        job, job_json = _submit(request, DenoiseFileSerializer)
        if job is None:
            return Response(job_json, status=status.HTTP_202_ACCEPTED)
        return _wav(job)


class DenoiseJobView(APIView):
    """`GET /api/denoise/jobs/<id>/`: 202 with progress while it runs, then 200 with the WAV; a refused file
    answers its error. Only for whoever submitted it (404 for anyone else)."""

    @extend_schema(operation_id="denoise_job", responses={(200, "audio/wav"): WAV, (202, "application/json"): JOB})
    def get(self, request: Request, job_id: str) -> Response | FileResponse:
        job = services.upload_job(signed_in(request), job_id)
        if job is None:
            raise ApiError(status.HTTP_404_NOT_FOUND, "There is no such job (finished jobs are kept for a while).")
        if (error := media.upload_error(job)) is not None:
            raise _rejection(error)
        if not job.done:
            return Response(_job_json(job), status=status.HTTP_202_ACCEPTED)
        return _wav(job)


class KeepUploadView(APIView):
    """`POST /api/recordings/upload/`: keep an uploaded file as one of your recordings (denoised unless
    `denoise` is false), seen by you and your friends like a live recording. 201 with the recording, or 202
    with a job to poll for a long file (the recording appears when it is done)."""

    @extend_schema(
        operation_id="recordings_upload",
        request={"multipart/form-data": KeepUploadSerializer},
        responses={201: inline_serializer("KeptRecording", RECORDING_FIELDS), 202: JOB},
    )
    def post(self, request: Request) -> Response:
        job, job_json = _submit(request, KeepUploadSerializer)
        recording = None if job is None else services.kept_recording(job)
        if recording is None:
            return Response(job_json, status=status.HTTP_202_ACCEPTED)
        return Response(services.recording_as_json(recording), status=status.HTTP_201_CREATED)
