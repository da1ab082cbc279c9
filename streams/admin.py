from django.contrib import admin

from streams.models import ActiveStream, StreamRecording


@admin.register(ActiveStream)
class ActiveStreamAdmin(admin.ModelAdmin):
    list_display = ("owner", "session_id", "started_at", "denoise_enabled")


@admin.register(StreamRecording)
class StreamRecordingAdmin(admin.ModelAdmin):
    list_display = ("owner", "title", "duration", "denoise_enabled", "created_at")
    search_fields = ("owner__username", "title")
