"""The client's address behind the reverse proxy the README's production section shows."""

from django.conf import settings


class ForwardedForMiddleware:
    """With DJANGO_BEHIND_PROXY, REMOTE_ADDR (the proxy's own address) becomes the client's
    address as the proxy forwards it in X-Forwarded-For; the last entry is the one the proxy
    wrote, whatever a client sent before it. Without the setting the header is ignored, so a
    client cannot pick its address for the login lockout, the throttles or the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.BEHIND_PROXY:
            forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
            if forwarded:
                request.META["REMOTE_ADDR"] = forwarded
        return self.get_response(request)
