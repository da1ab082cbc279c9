"""Account credentials: API tokens for headless clients, and what a password change revokes."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from knox.models import AuthToken

from accounts.signals import credentials_changed


def issue_api_token(user: AbstractBaseUser) -> tuple[str, datetime | None]:
    """A new token for one device; only its hash is stored, so the key can be shown this once."""
    instance, key = AuthToken.objects.create(user=user)
    return key, instance.expiry


def revoke_api_token(token: AuthToken) -> None:
    token.delete()


def revoke_all_api_tokens(user: AbstractBaseUser) -> int:
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def revoke_credentials_if_password_changed(
    sender: type[User],
    instance: User,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    **_: object,
) -> None:
    """`pre_save` of the user model: whoever held the old password loses every token and open socket.

    Django has no "password changed" signal; comparing with the stored hash catches every path that changes it
    (the admin, `changepassword`, a password reset, `set_password` then `save`). A save limited to other fields
    (every login updates `last_login` alone) cannot change it, and costs no query.
    """
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = User.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        revoke_all_api_tokens(instance)
        user_id = instance.pk
        transaction.on_commit(lambda: credentials_changed.send(sender=sender, user_id=user_id))
