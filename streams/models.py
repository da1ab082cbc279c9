import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class ActiveStream(models.Model):
    """A user who is live right now. At most one per user; deleted when the stream ends."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="active_stream")
    session_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    started_at = models.DateTimeField(default=timezone.now)
    denoise_enabled = models.BooleanField(default=True)
    # Kept in the database, not only in the media process, so any server process can answer a status request.
    listener_count = models.PositiveIntegerField(default=0)
    # The grace markers (streams.services.end_overdue_streams): a stream away for longer than the reconnect
    # grace period is ended. When the broadcaster's last presence socket closed (None while one is open; a
    # reconnect clears it) ...
    presence_lost_at = models.DateTimeField(null=True, blank=True)
    # Whether that last socket closed because its page went away (closed, reloaded, left), not a dropped network:
    # a reload is back within a second, so such a stream gets only the short leave grace.
    presence_left_page = models.BooleanField(default=False)
    # ... and when their media connection was reported gone (None while one sends; a new one's audio clears it).
    publisher_lost_at = models.DateTimeField(null=True, blank=True)
    # When the first audio arrived; a stream still without any after STREAM_NO_AUDIO_SECONDS is ended.
    audio_started_at = models.DateTimeField(null=True, blank=True)
    # The server process that holds the stream's media (streams.media.host_id(); empty until the first offer is
    # answered). Only that process ends it by deadline: another one would finalize a recording still written.
    media_host = models.CharField(max_length=64, blank=True, default="")
    # The broadcaster muted their microphone: the stream goes on, its listeners and recording get silence.
    muted = models.BooleanField(default=False)
    # Who listens now (user ids, each once), as the media engine last reported; their names go to the owner only.
    listener_ids = models.JSONField(default=list, blank=True)
    # The broadcaster's IANA time zone as their page reported it when going live (empty: unknown), so the
    # recording is titled by the broadcaster's own clock.
    time_zone = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.owner} live since {self.started_at:%Y-%m-%d %H:%M}"


class PresenceConnection(models.Model):
    """One open presence WebSocket. A live broadcaster with none left is ended after a grace period.

    Stored in the database so that several server processes sharing Redis agree on who is still connected.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    # The server process whose socket this is (streams.media.host_id(); empty: a run before hosts were recorded).
    # A restarting process forgets only its own sockets; those of a dead host are forgotten by a survivor.
    host = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.user} on {self.channel_name}"


class StreamRecording(models.Model):
    """A finished stream's audio, kept on disk under RECORDINGS_DIR and served only through an authorized view."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recordings")
    session_id = models.UUIDField(null=True, blank=True, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    # Relative to RECORDINGS_DIR, so the directory can move without rewriting rows.
    audio_path = models.CharField(max_length=500)
    duration = models.FloatField(help_text="Seconds of audio actually written.")
    denoise_enabled = models.BooleanField(default=True)
    # How much of the audio the server actually denoised (denoising can be switched while live, and a busy
    # server passes streams through); None when unknown (recordings repaired after a crash, older ones).
    denoised_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The waveform: the loudest sample (0..1) in each of equal slices, computed once when saved; None until then.
    peaks = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.owner}: {self.title}"
