"""Stream lifecycle and recordings JSON API: parse, authorize with `can_access`, call a service, answer."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.users import signed_in
from friends import services as friends
from quietcast import metrics
from quietcast.api_errors import ApiError, ErrorStatuses, call_translating_errors
from streams import media, recordings, services
from streams.events import ChannelLayerUnavailable, EndReason
from streams.ice_servers import ice_servers_for

# Start and stop are refused, changing nothing, while friends' pages could not be told about them.
EVENTS_DOWN_MESSAGE = "The server cannot reach its message service right now; nothing was changed. Try again shortly."


def owner_visible_to(viewer, username: str):
    """The user called `username`, if `viewer` may see their streams and recordings (404 unknown, 403 not)."""
    try:
        owner = friends.find_user(username)
    except friends.UserNotFound as error:
        raise ApiError(status.HTTP_404_NOT_FOUND, str(error)) from error
    if not friends.can_access(viewer, owner):
        raise ApiError(status.HTTP_403_FORBIDDEN, f"Only {owner.username} and their friends can see this.")
    return owner


class StartSerializer(serializers.Serializer):
    denoise = serializers.BooleanField(default=True)
    # The broadcaster's IANA zone (the page sends Intl's), so the recording is titled by their own clock. A
    # well-formed name this server's time zone database lacks is kept, and the title falls back to TIME_ZONE:
    # going live never fails over a title.
    time_zone = serializers.RegexField(
        r"\A[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z",
        required=False,
        default="",
        max_length=64,
        error_messages={"invalid": "Give a time zone name such as Europe/Paris."},
    )


class DenoiseSwitchSerializer(serializers.Serializer):
    denoise = serializers.BooleanField()


class MuteSerializer(serializers.Serializer):
    muted = serializers.BooleanField()


class StopSerializer(serializers.Serializer):
    # What the broadcaster's page measured; the saved duration is counted from the samples actually written.
    duration = serializers.FloatField(required=False, min_value=0, max_value=7 * 24 * 3600)
    # "tab_closed" from My page when its person leaves it for another page; the Stop button and API clients leave
    # the default.
    reason = serializers.ChoiceField(
        choices=[EndReason.STOPPED.value, EndReason.TAB_CLOSED.value], default=EndReason.STOPPED.value
    )


STATUS_FIELDS: dict[str, serializers.Field] = {
    "username": serializers.CharField(),
    "is_streaming": serializers.BooleanField(),
    "session_id": serializers.UUIDField(allow_null=True),
    "started_at": serializers.DateTimeField(allow_null=True),
    "denoise": serializers.BooleanField(allow_null=True),
    "listeners": serializers.IntegerField(),
    "muted": serializers.BooleanField(),
    "audio_started": serializers.BooleanField(),
    "listener_names": serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Who listens now; only in the owner's own status."
    ),
}
RECORDING_FIELDS: dict[str, serializers.Field] = {
    "id": serializers.IntegerField(),
    "title": serializers.CharField(),
    "description": serializers.CharField(),
    "duration": serializers.FloatField(),
    "created_at": serializers.DateTimeField(),
    "denoise_enabled": serializers.BooleanField(),
    "denoised_seconds": serializers.FloatField(allow_null=True),
    "url": serializers.CharField(),
    "peaks": serializers.ListField(child=serializers.FloatField()),
}
RECORDING_LIST = inline_serializer(
    "RecordingList",
    {
        "recordings": inline_serializer("Recording", RECORDING_FIELDS, many=True),
        "more": serializers.BooleanField(),
        "next_before": serializers.IntegerField(allow_null=True),
    },
)
PAGE_PARAMETERS = [
    OpenApiParameter("before", str, description="only recordings older than this recording id, or this time"),
    OpenApiParameter("limit", int, description=f"at most this many (1 to {recordings.MAX_PAGE_SIZE})"),
]


def recordings_page(request: Request, owner) -> Response:
    """One page of `owner`'s recordings, newest first, as `?before=` and `?limit=` ask (400 on bad values)."""
    try:
        page = recordings.page_of_recordings(
            owner, before=request.query_params.get("before"), limit=request.query_params.get("limit")
        )
    except recordings.InvalidPage as error:
        raise ApiError(status.HTTP_400_BAD_REQUEST, str(error)) from error
    return Response(recordings.page_as_json(page))


class StartStreamView(APIView):
    @extend_schema(
        request=StartSerializer,
        responses={
            201: inline_serializer(
                "StreamStarted",
                {
                    "session_id": serializers.UUIDField(),
                    "status": serializers.CharField(),
                    "denoise": serializers.BooleanField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        body = StartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            stream = services.start_stream(
                signed_in(request),
                denoise=body.validated_data["denoise"],
                time_zone=body.validated_data["time_zone"],
            )
        except services.AlreadyLive as error:
            raise ApiError(status.HTTP_409_CONFLICT, str(error), session_id=str(error.stream.session_id)) from error
        except services.DenoiseAtCapacity as error:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        except services.RecordingQuotaFull as error:
            raise ApiError(status.HTTP_403_FORBIDDEN, str(error)) from error
        except ChannelLayerUnavailable as error:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, EVENTS_DOWN_MESSAGE) from error
        except services.StreamError as error:
            raise ApiError(status.HTTP_409_CONFLICT, str(error)) from error
        return Response(
            {"session_id": str(stream.session_id), "status": "started", "denoise": stream.denoise_enabled},
            status=status.HTTP_201_CREATED,
        )


class StopStreamView(APIView):
    """Also takes a form-encoded POST with `csrfmiddlewaretoken` (what `navigator.sendBeacon` sends)."""

    @extend_schema(
        request=StopSerializer,
        responses=inline_serializer(
            "StreamStopped",
            {"status": serializers.CharField(), "recording_id": serializers.IntegerField(allow_null=True)},
        ),
    )
    def post(self, request: Request) -> Response:
        body = StopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            ended = services.stop_stream(signed_in(request), reason=EndReason(body.validated_data["reason"]))
        except services.NotLive as error:
            raise ApiError(status.HTTP_409_CONFLICT, str(error)) from error
        except ChannelLayerUnavailable as error:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, EVENTS_DOWN_MESSAGE) from error
        return Response({"status": "stopped", "recording_id": ended.recording.pk if ended.recording else None})


class DenoiseSwitchView(APIView):
    """Switch denoising of the caller's live stream on or off; listeners' audio crossfades and goes on."""

    @extend_schema(
        request=DenoiseSwitchSerializer,
        responses=inline_serializer(
            "DenoiseSwitched", {"session_id": serializers.UUIDField(), "denoise": serializers.BooleanField()}
        ),
    )
    def post(self, request: Request) -> Response:
        body = DenoiseSwitchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            stream = services.set_denoise(signed_in(request), body.validated_data["denoise"])
        except services.NotLive as error:
            raise ApiError(status.HTTP_409_CONFLICT, "You are not live. Start a stream first.") from error
        except (services.DenoiseAtCapacity, media.DenoiseUnavailable, media.MediaHostUnavailable) as error:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        return Response({"session_id": str(stream.session_id), "denoise": stream.denoise_enabled})


class MuteView(APIView):
    """Mute or unmute the caller's live stream; it goes on, and friends hear silence (the recording keeps it)."""

    @extend_schema(
        request=MuteSerializer,
        responses=inline_serializer(
            "MuteSwitched", {"session_id": serializers.UUIDField(), "muted": serializers.BooleanField()}
        ),
    )
    def post(self, request: Request) -> Response:
        body = MuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            stream = services.set_muted(signed_in(request), body.validated_data["muted"])
        except services.NotLive as error:
            raise ApiError(status.HTTP_409_CONFLICT, "You are not live. Start a stream first.") from error
        except media.MediaHostUnavailable as error:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        return Response({"session_id": str(stream.session_id), "muted": stream.muted})


class StreamStatusView(APIView):
    @extend_schema(responses=inline_serializer("StreamStatus", STATUS_FIELDS))
    def get(self, request: Request, username: str) -> Response:
        viewer = signed_in(request)
        owner = owner_visible_to(viewer, username)
        return Response(services.stream_status(owner, for_owner=owner.pk == viewer.pk))


class MyRecordingsView(APIView):
    @extend_schema(operation_id="recordings_mine", parameters=PAGE_PARAMETERS, responses=RECORDING_LIST)
    def get(self, request: Request) -> Response:
        return recordings_page(request, signed_in(request))


class UserRecordingsView(APIView):
    """A person's recordings, for them and their friends: `/api/users/<username>/recordings/`."""

    @extend_schema(operation_id="recordings_of_user", parameters=PAGE_PARAMETERS, responses=RECORDING_LIST)
    def get(self, request: Request, username: str) -> Response:
        return recordings_page(request, owner_visible_to(signed_in(request), username))


class IceServersView(APIView):
    """The STUN/TURN servers this browser or headless client should use; TURN credentials are minted per request."""

    @extend_schema(responses=inline_serializer("IceServers", {"ice_servers": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        return Response({"ice_servers": ice_servers_for(signed_in(request))})


class OfferSerializer(serializers.Serializer):
    sdp = serializers.CharField(max_length=100_000, trim_whitespace=False)
    type = serializers.ChoiceField(choices=["offer"])


ANSWER = inline_serializer(
    "SdpAnswer",
    {"sdp": serializers.CharField(), "type": serializers.CharField(), "session_id": serializers.UUIDField()},
)


def _parse_offer(request: Request) -> str:
    body = OfferSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data["sdp"]


MEDIA_ERROR_STATUS: ErrorStatuses = {
    media.PublisherAlreadyConnected: status.HTTP_409_CONFLICT,
    media.SessionEnded: status.HTTP_409_CONFLICT,
    media.OfferRejected: status.HTTP_400_BAD_REQUEST,
    media.DenoiseUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    media.NotSendingYet: status.HTTP_404_NOT_FOUND,
    media.TooManyConnections: status.HTTP_429_TOO_MANY_REQUESTS,
    media.MediaHostUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


class PublishOfferView(APIView):
    """The broadcaster's WebRTC offer, after `stream/start/`. A reloaded page offers again for the same session."""

    @extend_schema(request=OfferSerializer, responses=ANSWER)
    def post(self, request: Request) -> Response:
        offer_sdp = _parse_offer(request)
        try:
            stream, answer = call_translating_errors(
                MEDIA_ERROR_STATUS, metrics.measured_offer("publish", services.publish_offer), signed_in(request),
                offer_sdp,
            )
        except services.NotLive as error:
            raise ApiError(
                status.HTTP_409_CONFLICT, "You are not live. Start a stream before sending audio."
            ) from error
        return Response({"sdp": answer, "type": "answer", "session_id": str(stream.session_id)})


class ListenerOfferView(APIView):
    """A listener's WebRTC offer for someone's live stream (the owner or a friend). One person may hold
    MAX_LISTENER_CONNECTIONS_PER_USER connections to a stream; beyond that the answer is a 429."""

    @extend_schema(request=OfferSerializer, responses=ANSWER)
    def post(self, request: Request, username: str) -> Response:
        owner = owner_visible_to(signed_in(request), username)
        offer_sdp = _parse_offer(request)
        try:
            stream, answer = call_translating_errors(
                MEDIA_ERROR_STATUS, metrics.measured_offer("listen", services.listen_offer), signed_in(request), owner,
                offer_sdp,
            )
        except services.NotLive as error:
            raise ApiError(status.HTTP_404_NOT_FOUND, f"{owner.username} is not live.") from error
        return Response({"sdp": answer, "type": "answer", "session_id": str(stream.session_id)})


class FriendListView(APIView):
    """The viewer's friends and which of them are live."""

    @extend_schema(
        responses=inline_serializer(
            "FriendList",
            {
                "friends": inline_serializer(
                    "Friend",
                    {"username": serializers.CharField(), "is_streaming": serializers.BooleanField()},
                    many=True,
                )
            },
        )
    )
    def get(self, request: Request) -> Response:
        people = list(friends.friends_of(signed_in(request)))
        live = services.live_user_ids([friend.pk for friend in people])
        return Response(
            {"friends": [{"username": friend.username, "is_streaming": friend.pk in live} for friend in people]}
        )
