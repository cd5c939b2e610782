"""Request middleware: the client's address behind the reverse proxy the README's production
section shows, and a 400 for text no database can store in the URL or a form."""

import json
import re

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.middleware.gzip import GZipMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from config.text import unstorable


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


class UnstorableTextMiddleware:
    """A NUL character or a lone surrogate in the path, a query parameter or a form field is
    answered 400 naming where it was (JSON under /api/, text elsewhere), before any view or
    query sees it: PostgreSQL would refuse it mid-query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = self._problem(request)
        if problem is None:
            return self.get_response(request)
        where, why = problem
        if request.path.startswith("/api/"):
            return JsonResponse({where: [f"The value {why}."]}, status=400)
        return HttpResponse(
            f"Bad request: {where} {why}.", status=400, content_type="text/plain; charset=utf-8"
        )

    @staticmethod
    def _problem(request) -> tuple[str, str] | None:
        why = unstorable(request.path)
        if why:
            return "path", why
        sources = [request.GET]
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            sources.append(request.POST)
        for source in sources:
            for name, values in source.lists():
                for text in (name, *values):
                    why = unstorable(text)
                    if why:
                        return json.dumps(name)[1:-1] or "parameter", why
        return None


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """whitenoise, which also caches for good the vendored files whose names carry their
    version (static/vendor/…-4.1.1.min.js): like the manifest's hashed names, such a name never
    serves other bytes. Their brotli and gzip forms lie beside them, so the demo serves them
    compressed too."""

    VERSIONED = re.compile(r"vendor/[^/]+/[a-z0-9-]+-\d+\.\d+\.\d+\.min\.js")

    def immutable_file_test(self, path, url):
        name = url.removeprefix(self.static_prefix)
        return bool(self.VERSIONED.fullmatch(name)) or super().immutable_file_test(path, url)


class CompressedPagesMiddleware(GZipMiddleware):
    """gzip for the pages (the overview's charts carry their series in the page: 390 kB of
    HTML, 96 kB compressed). The API's answers and every stream (the feeds, CSV and JSON Lines
    downloads) stay as written, byte for byte. Django's GZipMiddleware pads each answer with
    random bytes against BREACH-style length probing."""

    TYPES = ("text/html",)

    def process_response(self, request, response):
        if response.streaming or not response.get("Content-Type", "").startswith(self.TYPES):
            return response
        return super().process_response(request, response)
