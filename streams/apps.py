from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from django.contrib.auth.models import User
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, pre_delete

        from accounts.signals import credentials_changed
        from audio_engine import EngineUnsupported
        from friends.signals import friend_requests_changed, friendship_changed
        from streams import media, services, signals
        from streams.models import StreamRecording

        try:
            media.check_engine_support()  # a server that could not carry a stream must not start
        except EngineUnsupported as error:
            raise ImproperlyConfigured(str(error)) from error

        media.admit_listeners_by(services.listener_still_allowed)
        friendship_changed.connect(services.on_friendship_changed, dispatch_uid="streams.on_friendship_changed")
        friend_requests_changed.connect(
            services.on_friend_requests_changed, dispatch_uid="streams.on_friend_requests_changed"
        )
        user_logged_out.connect(services.on_logged_out, dispatch_uid="streams.on_logged_out")
        credentials_changed.connect(services.on_credentials_changed, dispatch_uid="streams.on_credentials_changed")
        pre_delete.connect(services.on_user_deleting, sender=User, dispatch_uid="streams.on_user_deleting")
        post_delete.connect(
            services.on_recording_deleted, sender=StreamRecording, dispatch_uid="streams.on_recording_deleted"
        )
        for signal, receiver in (
            (signals.publisher_connected, services.on_publisher_connected),
            (signals.publisher_gone, services.on_publisher_gone),
            (signals.listener_count_changed, services.on_listener_count_changed),
            (signals.denoise_mode_changed, services.on_denoise_mode_changed),
            (signals.media_stopping, services.on_media_stopping),
            (signals.upload_processed, services.on_upload_processed),
        ):
            signal.connect(receiver, sender=signals.MEDIA, dispatch_uid=f"streams.{receiver.__name__}")
