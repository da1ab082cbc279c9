from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from friends.signals import friendship_changed
        from streams.services import on_friendship_changed

        friendship_changed.connect(on_friendship_changed, dispatch_uid="streams.on_friendship_changed")
