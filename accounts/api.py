from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import services
from accounts.users import signed_in
from quietcast.api_errors import ApiError


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class ObtainTokenView(APIView):
    """Exchange a username and password for a new API token, sent by headless clients as `Authorization: Token …`.

    Each call issues a token for one more device; it expires after API_TOKEN_TTL_DAYS without use.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Password hashing is deliberately slow: many guesses from one address would slow everyone else down.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=CredentialsSerializer,
        responses=inline_serializer(
            "TokenResponse", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
        ),
    )
    def post(self, request: Request) -> Response:
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        # The underlying HttpRequest, so that django-axes' middleware sees a lockout and answers 429 instead.
        user = authenticate(request._request, **credentials.validated_data)
        if user is None:
            raise ApiError(status.HTTP_401_UNAUTHORIZED, "Wrong username or password.")
        key, expiry = services.issue_api_token(user)
        return Response({"token": key, "expiry": expiry})


class LogoutTokenView(APIView):
    """Revoke the token this request is made with (log out this device)."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(request=None, responses=inline_serializer("LoggedOut", {"status": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        # Only this token: a stream live from another device stays live.
        services.revoke_api_token(request.auth)
        return Response({"status": "logged_out"})


class LogoutAllView(APIView):
    """Revoke every API token of the user (log out all devices), with a token or a browser session."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "LoggedOutAll", {"status": serializers.CharField(), "revoked": serializers.IntegerField()}
        ),
    )
    def post(self, request: Request) -> Response:
        revoked = services.revoke_all_api_tokens(signed_in(request))
        return Response({"status": "logged_out", "revoked": revoked})
