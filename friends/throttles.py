from typing import cast

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView


class SearchRateThrottle(UserRateThrottle):
    """Searches per person per minute (SEARCH_RATE), on the API and the page together: enough to find friends,
    too few to list every username one letter at a time."""

    scope = "search"

    def get_rate(self) -> str | None:
        # DRF copies the rates into the class when it is imported; read the settings as they are now.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)


def search_allowed(request: HttpRequest) -> bool:
    """The same allowance for the search page, which is a plain Django view."""
    # DRF's throttles read only `user` and `META`, which a Django request has too; no view is needed.
    return SearchRateThrottle().allow_request(cast(Request, request), cast(APIView, None))
