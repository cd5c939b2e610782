"""`?format=csv` or `Accept: text/csv` for the history, the records and the statements. Their
downloads are streamed by fund/api/csv.py; this renders whatever else such a request is answered
with (an error, OPTIONS) as CSV."""

import csv
import io
import json

from django.core.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):  # an error: one row per field
            data = [
                {"field": key, "message": "; ".join(map(str, v)) if isinstance(v, list) else str(v)}
                for key, v in data.items()
            ]
        rows = list(data or [])
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue().encode(self.charset)


class FormatNegotiation(DefaultContentNegotiation):
    """An unknown or empty `?format=` is the client's error (400), not a missing page (404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if request.query_params.get(self.settings.URL_FORMAT_OVERRIDE) == "":
            raise ValidationError(
                {"format": f"Choose one of {', '.join(r.format for r in renderers)}."}
            )
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers, format):
        found = [renderer for renderer in renderers if renderer.format == format]
        if not found:
            raise ValidationError(
                {"format": f"Choose one of {', '.join(r.format for r in renderers)}."}
            )
        return found


class JSONLinesRenderer(BaseRenderer):
    """JSON Lines: one JSON object a line. The cycle inputs stream their rows themselves
    (fund/api/cycle_inputs.py); this renders anything else such a request is answered with (an
    error) as one line."""

    media_type = "application/jsonl"
    format = "jsonl"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return (json.dumps(data, ensure_ascii=False) + "\n").encode(self.charset)
