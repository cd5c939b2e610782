"""Errors the fund's services raise besides Django's ValidationError (bad input, HTTP 400)."""


class ConflictError(Exception):
    """The request clashes with what is already booked (HTTP 409): an external id reused with
    different content, or a write to a cycle that is already settling or settled."""

    def __init__(self, message: str, *, code: str = "conflict", details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
