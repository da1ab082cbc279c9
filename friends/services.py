"""Friendship operations and the one access rule every view, consumer and download uses.

Views, API views, admin actions and consumers call these functions; none of them touch the models directly.
"""

from typing import Literal

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from friends.models import FriendRequest, Friendship
from friends.signals import friend_requests_changed, friendship_changed

FriendshipState = Literal["none", "pending_sent", "pending_received", "friends"]
SEARCH_RESULT_LIMIT = 20


class FriendshipError(Exception):
    """A friendship operation that cannot be done; the message is shown to the person who asked."""


class UserNotFound(FriendshipError):
    pass


class NotAllowed(FriendshipError):
    pass


class NothingToActOn(FriendshipError):
    pass


def _has_nul(text: str) -> bool:
    """No username contains a NUL byte, and PostgreSQL refuses one in any query: such input matches nobody."""
    return "\x00" in text


def find_user(username: str) -> User:
    user = None if _has_nul(username) else User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise UserNotFound(f"There is no user called “{username}”.")
    return user


def _ordered_pair(a: User, b: User) -> tuple[User, User]:
    return (a, b) if a.pk < b.pk else (b, a)


def are_friends(a: User, b: User) -> bool:
    """True only for an accepted pair; a pending request in either direction is not friendship."""
    if not (a.is_authenticated and b.is_authenticated) or a.pk == b.pk:
        return False
    low, high = _ordered_pair(a, b)
    return Friendship.objects.filter(user_low=low, user_high=high).exists()


def can_access(viewer: User | AnonymousUser, owner: User) -> bool:
    """Who may see someone's live state, hear their stream, and list or download their recordings.

    The owner and their accepted friends; nobody else (anonymous visitors, strangers, pending requests).
    """
    if not viewer.is_authenticated or not viewer.is_active:
        return False
    return viewer.pk == owner.pk or are_friends(viewer, owner)


def friendship_state(viewer: User, other: User) -> FriendshipState:
    if are_friends(viewer, other):
        return "friends"
    if FriendRequest.objects.filter(from_user=viewer, to_user=other).exists():
        return "pending_sent"
    if FriendRequest.objects.filter(from_user=other, to_user=viewer).exists():
        return "pending_received"
    return "none"


def friend_ids(user: User) -> set[int]:
    pairs = Friendship.objects.filter(Q(user_low=user) | Q(user_high=user)).values_list("user_low", "user_high")
    return {low if high == user.pk else high for low, high in pairs}


def friends_of(user: User) -> QuerySet:
    return User.objects.filter(pk__in=friend_ids(user)).order_by("username")


def search_users(viewer: User, query: str) -> list[tuple[User, FriendshipState]]:
    """Users whose name contains `query` (any case), never the viewer, at most SEARCH_RESULT_LIMIT."""
    query = query.strip()
    if not query or _has_nul(query):
        return []
    matches = list(
        User.objects.filter(username__icontains=query, is_active=True)
        .exclude(pk=viewer.pk)
        .order_by("username")[:SEARCH_RESULT_LIMIT]
    )
    friends = friend_ids(viewer)
    sent = set(FriendRequest.objects.filter(from_user=viewer).values_list("to_user_id", flat=True))
    received = set(FriendRequest.objects.filter(to_user=viewer).values_list("from_user_id", flat=True))

    def state(user: User) -> FriendshipState:
        if user.pk in friends:
            return "friends"
        if user.pk in sent:
            return "pending_sent"
        if user.pk in received:
            return "pending_received"
        return "none"

    return [(user, state(user)) for user in matches]


def _lock_pair(a: User, b: User) -> None:
    """Serialise concurrent operations on one pair (PostgreSQL row locks, taken in a fixed order)."""
    list(User.objects.select_for_update().filter(pk__in=[a.pk, b.pk]).order_by("pk"))


def _received_requests_changed(user: User) -> None:
    """Announce, once the change commits, that requests waiting for `user` came or went. A receiver that fails is
    logged, never raised: the change itself is done."""
    transaction.on_commit(lambda: friend_requests_changed.send(sender=FriendRequest, user=user), robust=True)


def _make_friends(a: User, b: User) -> None:
    FriendRequest.objects.filter(Q(from_user=a, to_user=b) | Q(from_user=b, to_user=a)).delete()
    low, high = _ordered_pair(a, b)
    Friendship.objects.get_or_create(user_low=low, user_high=high)


SendResult = Literal["pending", "accepted", "friends"]


def send_request(from_user: User, to_username: str) -> tuple[SendResult, bool]:
    """Ask `to_username` to be friends. Returns (status, created).

    If they had already asked us, this accepts their request. Repeating a request, or asking a friend,
    changes nothing and reports the current status.
    """
    to_user = find_user(to_username)
    if to_user.pk == from_user.pk:
        raise NotAllowed("You cannot send a friend request to yourself.")
    with transaction.atomic():
        _lock_pair(from_user, to_user)
        if are_friends(from_user, to_user):
            return "friends", False
        if not FriendRequest.objects.filter(from_user=to_user, to_user=from_user).exists():
            try:
                with transaction.atomic():
                    _, created = FriendRequest.objects.get_or_create(from_user=from_user, to_user=to_user)
            except IntegrityError:
                created = False
            if created:
                _received_requests_changed(to_user)
            return "pending", created
        _make_friends(from_user, to_user)
        _received_requests_changed(from_user)  # their request to us is answered
    friendship_changed.send(sender=Friendship, user_a=from_user, user_b=to_user, are_friends=True)
    return "accepted", False


def accept_request(user: User, from_username: str) -> Literal["accepted"]:
    sender = find_user(from_username)
    with transaction.atomic():
        _lock_pair(user, sender)
        if not FriendRequest.objects.filter(from_user=sender, to_user=user).exists():
            raise NothingToActOn(f"{sender.username} has not sent you a friend request.")
        _make_friends(user, sender)
        _received_requests_changed(user)
    friendship_changed.send(sender=Friendship, user_a=user, user_b=sender, are_friends=True)
    return "accepted"


def reject_request(user: User, from_username: str) -> Literal["rejected"]:
    sender = find_user(from_username)
    deleted, _ = FriendRequest.objects.filter(from_user=sender, to_user=user).delete()
    if not deleted:
        raise NothingToActOn(f"{sender.username} has not sent you a friend request.")
    _received_requests_changed(user)
    return "rejected"


def cancel_request(user: User, to_username: str) -> Literal["cancelled"]:
    recipient = find_user(to_username)
    deleted, _ = FriendRequest.objects.filter(from_user=user, to_user=recipient).delete()
    if not deleted:
        raise NothingToActOn(f"You have no pending friend request to {recipient.username}.")
    _received_requests_changed(recipient)
    return "cancelled"


def remove_friend(user: User, username: str) -> Literal["removed"]:
    other = find_user(username)
    if other.pk == user.pk:
        raise NothingToActOn("You are not your own friend in Quietcast's books.")
    low, high = _ordered_pair(user, other)
    deleted, _ = Friendship.objects.filter(user_low=low, user_high=high).delete()
    if not deleted:
        raise NothingToActOn(f"You and {other.username} are not friends.")
    friendship_changed.send(sender=Friendship, user_a=user, user_b=other, are_friends=False)
    return "removed"


def received_requests(user: User) -> QuerySet:
    return FriendRequest.objects.filter(to_user=user).select_related("from_user").order_by("-created_at")


def sent_requests(user: User) -> QuerySet:
    return FriendRequest.objects.filter(from_user=user).select_related("to_user").order_by("-created_at")
