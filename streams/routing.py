from django.urls import path

from streams import consumers

websocket_urlpatterns = [
    path("ws/presence/", consumers.PresenceConsumer.as_asgi()),
    path("ws/stream/<str:username>/", consumers.StreamConsumer.as_asgi()),
]
