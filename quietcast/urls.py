from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.api import ObtainTokenView
from friends.urls import api_urlpatterns as friends_api
from streams.urls import api_urlpatterns as streams_api

api_urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api_token"),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    *friends_api,
    *streams_api,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("", include("accounts.urls")),
    path("", include("streams.urls")),
    path("", include("friends.urls")),
]
