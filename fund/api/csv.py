"""CSV downloads of a whole selection, streamed row by row."""

import csv
import itertools
import json
from collections.abc import Iterable
from typing import Any

from django.http import StreamingHttpResponse
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

from fund.api.renderers import CSVRenderer

CSV_ROWS_MAX = 100_000


class _Echo:
    def write(self, value):
        return value


def csv_response(filename: str, header: list[str], rows: Iterable[list[Any]]):
    """A streamed CSV download: the header, then each row as it is read."""
    writer = csv.writer(_Echo(), lineterminator="\n")
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in itertools.chain([header], rows)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def rows_response(request, name: str, header: list[str], rows: Iterable[dict]):
    """A streamed download of `rows` (dicts with the `header` keys), as CSV when the request's
    renderer is CSV's, as JSON Lines otherwise; attachment `name`.csv / .jsonl."""
    if wants_csv(request):
        writer = csv.writer(_Echo(), lineterminator="\n")
        lines = itertools.chain([header], ([d[h] for h in header] for d in rows))
        body = (writer.writerow(line) for line in lines)
    else:
        body = (json.dumps(d, separators=(",", ":")) + "\n" for d in rows)
    return encoded_rows_response(request, name, body)


def encoded_rows_response(request, name: str, body: Iterable):
    """A streamed download of rows already written as CSV or JSON Lines (as `wants_csv` says)."""
    if wants_csv(request):
        content_type, extension = "text/csv; charset=utf-8", "csv"
    else:
        content_type, extension = "application/jsonl; charset=utf-8", "jsonl"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{extension}"'
    return response


def wants_csv(request) -> bool:
    return getattr(request.accepted_renderer, "format", None) == "csv"


class CSVListMixin:
    """A list view that answers `?format=csv` (or Accept: text/csv) with its whole filtered
    selection, at most CSV_ROWS_MAX rows: `csv_header`, one `csv_row(obj)` per row."""

    renderer_classes = [JSONRenderer, CSVRenderer, BrowsableAPIRenderer]
    csv_header: list[str] = []

    def csv_filename(self) -> str:
        raise NotImplementedError

    def csv_row(self, obj) -> list:
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        if not wants_csv(request):
            return super().get(request, *args, **kwargs)
        self.paginator.get_page_size(request)  # the same parameters are checked for CSV
        rows = self.filter_queryset(self.get_queryset())[:CSV_ROWS_MAX]
        return csv_response(
            self.csv_filename(),
            self.csv_header,
            (self.csv_row(row) for row in rows.iterator(chunk_size=2000)),
        )
