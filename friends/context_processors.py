from django.http import HttpRequest


def pending_request_count(request: HttpRequest) -> dict:
    """The number shown next to "Requests" in the navigation bar."""
    if not request.user.is_authenticated:
        return {}
    from friends.services import received_requests

    return {"pending_request_count": received_requests(request.user).count()}
