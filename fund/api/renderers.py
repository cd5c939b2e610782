"""CSV for the history, the records and the statements: `?format=csv` or `Accept: text/csv`."""

import csv
import io

from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "results" in data:
            data = data["results"]
        if isinstance(data, dict):  # an error: one row per field
            data = [{"field": key, "message": "; ".join(map(str, v)) if isinstance(v, list) else str(v)}
                    for key, v in data.items()]
        rows = list(data or [])
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue().encode(self.charset)
