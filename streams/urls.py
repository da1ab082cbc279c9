from django.urls import path

from streams import api, pages, recordings_views, uploads_api

urlpatterns = [
    path("", pages.home, name="home"),
    path("user/<str:username>/", pages.profile, name="profile"),
    path("recordings/<int:recording_id>/audio/", recordings_views.recording_audio, name="recording_audio"),
]

api_urlpatterns = [
    path("friends/", api.FriendListView.as_view(), name="api_friends"),
    path("stream/start/", api.StartStreamView.as_view(), name="api_stream_start"),
    path("stream/stop/", api.StopStreamView.as_view(), name="api_stream_stop"),
    path("stream/denoise/", api.DenoiseSwitchView.as_view(), name="api_stream_denoise"),
    path("stream/mute/", api.MuteView.as_view(), name="api_stream_mute"),
    path("stream/offer/", api.PublishOfferView.as_view(), name="api_stream_offer"),
    path("stream/listener/<str:username>/offer/", api.ListenerOfferView.as_view(), name="api_listener_offer"),
    path("stream/status/<str:username>/", api.StreamStatusView.as_view(), name="api_stream_status"),
    path("recordings/", api.MyRecordingsView.as_view(), name="api_my_recordings"),
    path("recordings/<int:recording_id>/", recordings_views.RecordingDetailView.as_view(), name="api_recording_detail"),
    path(
        "recordings/<int:recording_id>/merge-previous/",
        recordings_views.MergeWithPreviousView.as_view(),
        name="api_recording_merge_previous",
    ),
    path("users/<str:username>/recordings/", api.UserRecordingsView.as_view(), name="api_user_recordings"),
    path("ice-servers/", api.IceServersView.as_view(), name="api_ice_servers"),
    path("denoise/", uploads_api.DenoiseFileView.as_view(), name="api_denoise_file"),
    path("denoise/jobs/<str:job_id>/", uploads_api.DenoiseJobView.as_view(), name="api_denoise_job"),
    path("recordings/upload/", uploads_api.KeepUploadView.as_view(), name="api_recordings_upload"),
]
