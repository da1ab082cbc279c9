from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from accounts.signals import credentials_changed
        from friends.signals import friendship_changed
        from streams.events import close_sockets_of
        from streams.services import on_friendship_changed

        friendship_changed.connect(on_friendship_changed, dispatch_uid="streams.on_friendship_changed")
        credentials_changed.connect(
            lambda user_id, **_: close_sockets_of(user_id), weak=False, dispatch_uid="streams.close_sockets_of"
        )
