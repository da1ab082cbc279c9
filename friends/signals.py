from django.dispatch import Signal

# Sent after two people become friends or stop being friends, with `user_a`, `user_b` and `are_friends`.
# Live state and open streams react to it (streams.services.on_friendship_changed), so an unfriended person
# stops seeing and hearing at once instead of at their next page load.
friendship_changed = Signal()

# Sent once a change to pending friend requests has committed, with `user`: the person whose received requests
# changed (one came, or was accepted, rejected or cancelled). Their open pages show the new count (streams relays
# it to their presence sockets).
friend_requests_changed = Signal()
