"""WebSocket routes. Each app contributes its own list."""

from streams.routing import websocket_urlpatterns as streams_routes

websocket_urlpatterns = [*streams_routes]
