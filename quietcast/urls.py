from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.api import LogoutAllView, LogoutTokenView, ObtainTokenView
from friends.urls import api_urlpatterns as friends_api
from quietcast.metrics import metrics_view
from streams.urls import api_urlpatterns as streams_api

api_urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api_token"),
    path("auth/logout/", LogoutTokenView.as_view(), name="api_logout"),
    path("auth/logout-all/", LogoutAllView.as_view(), name="api_logout_all"),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    *friends_api,
    *streams_api,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("metrics", metrics_view, name="metrics"),
    path("", include("accounts.urls")),
    path("", include("streams.urls")),
    path("", include("friends.urls")),
]

# Pages in the site's layout with a way back; `{"error": ...}` under /api/.
handler400 = "quietcast.error_pages.bad_request"
handler403 = "quietcast.error_pages.permission_denied"
handler404 = "quietcast.error_pages.page_not_found"
handler500 = "quietcast.error_pages.server_error"
