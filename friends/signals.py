from django.dispatch import Signal

# Sent after two people become friends or stop being friends, with `user_a`, `user_b` and `are_friends`.
# Live state and open streams react to it (streams.services.on_friendship_changed), so an unfriended person
# stops seeing and hearing at once instead of at their next page load.
friendship_changed = Signal()
