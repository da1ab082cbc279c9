from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        from accounts.services import revoke_credentials_if_password_changed

        pre_save.connect(
            revoke_credentials_if_password_changed,
            sender=get_user_model(),
            dispatch_uid="accounts.revoke_credentials_if_password_changed",
        )
