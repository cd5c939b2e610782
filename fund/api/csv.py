"""CSV downloads of a whole selection, streamed row by row."""

import csv
import itertools
from collections.abc import Iterable
from typing import Any

from django.http import StreamingHttpResponse

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


def wants_csv(request) -> bool:
    return getattr(request.accepted_renderer, "format", None) == "csv"
