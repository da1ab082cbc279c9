from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from friends.signals import friendship_changed
        from streams import services

        friendship_changed.connect(services.on_friendship_changed, dispatch_uid="streams.on_friendship_changed")
        user_logged_out.connect(services.on_logged_out, dispatch_uid="streams.on_logged_out")
