"""Friends JSON API: parse, call a service, answer. Errors come out as {"error": ...} (quietcast.api_errors)."""

from collections.abc import Callable

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.users import signed_in
from friends import services
from quietcast.api_errors import ErrorStatuses, call_translating_errors


class UsernameSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


def parse_username(request: Request) -> str:
    serializer = UsernameSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["username"]


FRIENDSHIP_ERROR_STATUS: ErrorStatuses = {
    services.UserNotFound: status.HTTP_404_NOT_FOUND,
    services.NothingToActOn: status.HTTP_404_NOT_FOUND,
    services.NotAllowed: status.HTTP_400_BAD_REQUEST,
}


def call_service(operation: Callable, *args):
    return call_translating_errors(FRIENDSHIP_ERROR_STATUS, operation, *args)


STATUS_RESPONSE = inline_serializer("FriendshipStatus", {"status": serializers.CharField()})


class UserSearchView(APIView):
    @extend_schema(
        parameters=[SearchQuerySerializer],
        responses=inline_serializer(
            "UserSearch",
            {
                "results": inline_serializer(
                    "UserSearchResult",
                    {"username": serializers.CharField(), "friendship": serializers.CharField()},
                    many=True,
                )
            },
        ),
    )
    def get(self, request: Request) -> Response:
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        results = services.search_users(signed_in(request), query.validated_data["q"])
        return Response({"results": [{"username": user.username, "friendship": state} for user, state in results]})


class SendRequestView(APIView):
    @extend_schema(request=UsernameSerializer, responses={201: STATUS_RESPONSE, 200: STATUS_RESPONSE})
    def post(self, request: Request) -> Response:
        result, created = call_service(services.send_request, signed_in(request), parse_username(request))
        return Response({"status": result}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _friendship_action(operation: Callable) -> type[APIView]:
    """An API view that takes {"username"} and answers {"status"} from one friendship operation."""

    class FriendshipActionView(APIView):
        @extend_schema(request=UsernameSerializer, responses=STATUS_RESPONSE, operation_id=operation.__name__)
        def post(self, request: Request) -> Response:
            return Response({"status": call_service(operation, signed_in(request), parse_username(request))})

    FriendshipActionView.__name__ = f"{operation.__name__.title().replace('_', '')}View"
    return FriendshipActionView


AcceptRequestView = _friendship_action(services.accept_request)
RejectRequestView = _friendship_action(services.reject_request)
CancelRequestView = _friendship_action(services.cancel_request)
RemoveFriendView = _friendship_action(services.remove_friend)


class FriendRequestListView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "FriendRequests",
            {
                "received": inline_serializer(
                    "FriendRequestEntry",
                    {"username": serializers.CharField(), "created_at": serializers.DateTimeField()},
                    many=True,
                ),
                "sent": inline_serializer(
                    "SentFriendRequestEntry",
                    {"username": serializers.CharField(), "created_at": serializers.DateTimeField()},
                    many=True,
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        received = [
            {"username": entry.from_user.username, "created_at": entry.created_at}
            for entry in services.received_requests(signed_in(request))
        ]
        sent = [
            {"username": entry.to_user.username, "created_at": entry.created_at}
            for entry in services.sent_requests(signed_in(request))
        ]
        return Response({"received": received, "sent": sent})
