"""The friendship rules, straight against the services."""

import pytest
from django.contrib.auth.models import AnonymousUser

from friends import services
from friends.models import FriendRequest, Friendship

pytestmark = pytest.mark.django_db


def test_friendship_is_mutual_and_stored_once(cast):
    alice, bob = cast["owner"], cast["friend"]
    assert services.are_friends(alice, bob) and services.are_friends(bob, alice)
    assert Friendship.objects.count() == 1


def test_a_pending_request_is_not_friendship(cast):
    assert not services.are_friends(cast["owner"], cast["pending"])
    assert services.friendship_state(cast["owner"], cast["pending"]) == "pending_received"
    assert services.friendship_state(cast["pending"], cast["owner"]) == "pending_sent"


@pytest.mark.parametrize(
    ("role", "allowed"), [("owner", True), ("friend", True), ("pending", False), ("stranger", False)]
)
def test_can_access_allows_only_the_owner_and_friends(cast, role, allowed):
    assert services.can_access(cast[role], cast["owner"]) is allowed


def test_can_access_refuses_anonymous_and_deactivated_users(cast):
    assert not services.can_access(AnonymousUser(), cast["owner"])
    bob = cast["friend"]
    bob.is_active = False
    bob.save()
    assert not services.can_access(bob, cast["owner"])


def test_crossed_requests_become_friends(alice, carol):
    assert services.send_request(alice, "carol") == ("pending", True)
    assert services.send_request(carol, "alice") == ("accepted", False)
    assert services.are_friends(alice, carol)
    assert not FriendRequest.objects.exists()


def test_unfriending_leaves_no_trace(cast):
    services.remove_friend(cast["friend"], "alice")
    assert services.friendship_state(cast["owner"], cast["friend"]) == "none"
    assert services.send_request(cast["friend"], "alice") == ("pending", True)


def test_friend_ids_sees_both_sides_of_each_pair(cast, make_user):
    zed = make_user("zed")
    services.send_request(zed, "bob")
    services.accept_request(cast["friend"], "zed")
    assert services.friend_ids(cast["friend"]) == {cast["owner"].pk, zed.pk}


def test_deactivated_users_cannot_be_found(alice, carol):
    carol.is_active = False
    carol.save()
    with pytest.raises(services.UserNotFound):
        services.send_request(alice, "carol")
    assert services.search_users(alice, "car") == []
