from django.dispatch import Signal

# Sent after commit when a user's password changed, with `user_id`: their API tokens are already revoked;
# whatever holds live connections of theirs (streams' sockets) closes them, so a stolen session cannot stay on.
credentials_changed = Signal()
