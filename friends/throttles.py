from rest_framework.throttling import UserRateThrottle


class SearchRateThrottle(UserRateThrottle):
    """Searches per person per minute (SEARCH_RATE), on the API and the page together: enough to find friends,
    too few to list every username one letter at a time."""

    scope = "search"
