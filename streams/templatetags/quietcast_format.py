"""Template filters for how Quietcast writes times (the page's JavaScript writes them the same way)."""

from datetime import UTC, datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as mm:ss, or h:mm:ss from an hour up; empty for no value."""
    if seconds is None or seconds == "":
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes:02}:{secs:02}"


@register.filter
def seconds_ago(moment: datetime | None) -> float | None:
    """Seconds from `moment` to now by the server's clock (the instant `{% now %}` writes), e.g. how long a stream
    has been live, so a page shows its timer right before its script takes over."""
    if moment is None:
        return None
    return max(0.0, (timezone.now() - moment).total_seconds())


@register.filter
def utc_time(moment: datetime | None) -> str:
    """What a page shows before its script writes the time in the viewer's own zone: the instant in UTC."""
    if moment is None:
        return ""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
