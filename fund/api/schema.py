"""What several API modules document alike: error answers, who may call, the CSV parameter."""

import inspect

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

ERROR = OpenApiResponse(description="Field messages: {field: [message, …]} or {detail: …}.")
DENIED = {
    401: OpenApiResponse(description="Not logged in / no valid token."),
    403: OpenApiResponse(description="Logged in, but not allowed."),
}
# Public reads: no login needed, but a token that is sent must be valid; anonymous clients are
# throttled.
PUBLIC = {
    401: OpenApiResponse(description="A token was sent and is not valid."),
    429: OpenApiResponse(
        description="Too many requests from an anonymous client: retry after Retry-After seconds."
    ),
}
BUSY = {
    503: OpenApiResponse(
        description="The books are busy with another change: retry after Retry-After seconds."
    )
}
CSV_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=["json", "csv"],
    description="csv: the whole selection as CSV (at most 100,000 rows).",
)

# Query parameters that are not filters: a cursor, a page size and the CSV switch.
_NOT_FILTERS = frozenset({"cursor", "page_size", "format"})


def filters_not_empty(result, generator, request, public):
    """drf-spectacular hook: a filter sent empty is refused (fund/api/filtering.py), so the
    schema says each text filter has at least one character."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if (
                    parameter.get("in") == "query"
                    and parameter["name"] not in _NOT_FILTERS
                    and schema.get("type") == "string"
                    and "enum" not in schema
                ):
                    schema["minLength"] = 1
    return result


def public_without_security(result, generator, request, public):
    """drf-spectacular hook: the public operations need no credential, so the schema says so
    (`security: []`: no padlock in the docs)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if "public" in operation.get("tags", []):
                operation["security"] = []
    return result


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, but an operation's description comes from its own view's or method's
    docstring only: a mixin's or a base class's docstring speaks of the code, not the endpoint."""

    def get_description(self) -> str:
        name = getattr(self.view, "action", None) or self.method.lower()
        method = self.view.__class__.__dict__.get(name)
        own_method = inspect.cleandoc(method.__doc__) if method and method.__doc__ else ""
        own_view = self.view.__class__.__dict__.get("__doc__") or ""
        return own_method or inspect.cleandoc(own_view)
