"""ASGI entry point: Django views over HTTP and the WebSocket consumers, in one Daphne process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quietcast.settings")
django_http_app = get_asgi_application()

# Imported after Django is set up: the routing modules import models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from quietcast.ws_auth import SessionOrTokenAuthMiddleware  # noqa: E402
from quietcast.ws_origin import SameOriginValidator  # noqa: E402
from quietcast.ws_routing import websocket_urlpatterns  # noqa: E402
from streams.deadlines import DeadlineChecks  # noqa: E402

application = DeadlineChecks(
    ProtocolTypeRouter(
        {
            # Static files come from the app itself: Quietcast must work on a LAN with no web server in front.
            "http": ASGIStaticFilesHandler(django_http_app),
            "websocket": SameOriginValidator(SessionOrTokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)
