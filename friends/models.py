from django.conf import settings
from django.db import models
from django.db.models import F, Q


class FriendRequest(models.Model):
    """A pending request from one user to another. Accepting turns it into a Friendship and deletes it."""

    from_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_requests")
    to_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="received_requests")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["from_user", "to_user"], name="one_request_per_direction"),
            models.CheckConstraint(condition=~Q(from_user=F("to_user")), name="no_request_to_self"),
        ]

    def __str__(self) -> str:
        return f"{self.from_user} → {self.to_user}"


class Friendship(models.Model):
    """An accepted, mutual friendship, stored once per pair with the lower user id first."""

    user_low = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_high = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_low", "user_high"], name="one_friendship_per_pair"),
            models.CheckConstraint(condition=Q(user_low__lt=F("user_high")), name="friendship_pair_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.user_low} ↔ {self.user_high}"
