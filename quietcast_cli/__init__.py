"""Headless Quietcast client: publish a WAV file as a live stream, or listen to a friend's stream."""
