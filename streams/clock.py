"""The time the stream lifecycle reads: one function, so that tests can move time by hand."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
