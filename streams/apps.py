from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from audio_engine import EngineUnsupported
        from friends.signals import friendship_changed
        from streams import media, services, signals

        try:
            media.check_engine_support()  # a server that could not carry a stream must not start
        except EngineUnsupported as error:
            raise ImproperlyConfigured(str(error)) from error

        friendship_changed.connect(services.on_friendship_changed, dispatch_uid="streams.on_friendship_changed")
        user_logged_out.connect(services.on_logged_out, dispatch_uid="streams.on_logged_out")
        for signal, receiver in (
            (signals.publisher_connected, services.on_publisher_connected),
            (signals.publisher_gone, services.on_publisher_gone),
            (signals.listener_count_changed, services.on_listener_count_changed),
            (signals.media_stopping, services.on_media_stopping),
        ):
            signal.connect(receiver, sender=signals.MEDIA, dispatch_uid=f"streams.{receiver.__name__}")
