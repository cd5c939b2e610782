"""Cursor pages: stable under new records, and a bad cursor is the client's error (400)."""

import re

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: f"Give a whole number from 1 to {self.max_page_size}."}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        """The schema says what get_page_size takes: a whole number from 1 to max_page_size."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page, 1 to {self.max_page_size} (default {self.page_size})."
                )
                parameter["schema"].update(
                    minimum=1, maximum=self.max_page_size, default=self.page_size
                )
        return parameters

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {"cursor": "This cursor is not valid: follow the next and previous links."}
            ) from None


def cursor(ordering, size: int = 100, max_size: int = 1000) -> type[Cursor]:
    return type(
        "Cursor", (Cursor,), {"ordering": ordering, "page_size": size, "max_page_size": max_size}
    )
