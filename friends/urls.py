from django.urls import path

from friends import api, views

urlpatterns = [
    path("search/", views.search, name="search"),
    path("friend-requests/", views.friend_requests, name="friend_requests"),
    path("friends/<slug:action>/", views.friend_action, name="friend_action"),
]

api_urlpatterns = [
    path("users/search/", api.UserSearchView.as_view(), name="api_user_search"),
    path("friends/requests/", api.FriendRequestListView.as_view(), name="api_friend_requests"),
    path("friends/request/", api.SendRequestView.as_view(), name="api_friend_request"),
    path("friends/accept/", api.AcceptRequestView.as_view(), name="api_friend_accept"),
    path("friends/reject/", api.RejectRequestView.as_view(), name="api_friend_reject"),
    path("friends/cancel/", api.CancelRequestView.as_view(), name="api_friend_cancel"),
    path("friends/remove/", api.RemoveFriendView.as_view(), name="api_friend_remove"),
]
