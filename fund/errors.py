"""Errors the fund's services raise besides Django's ValidationError (bad input, HTTP 400)."""

# What staff are told when "settle now" closed a cycle but could not send its settlement.
SEND_FAILED = (
    "The cycle is closed, but its settlement could not be sent to the workers (the broker is "
    "unreachable): send it again, or the scheduler sends it once its grace period is over."
)


class ConflictError(Exception):
    """The request clashes with what is already booked (HTTP 409): an external id reused with
    different content, or a write to a cycle that is already settling or settled."""

    def __init__(self, message: str, *, code: str = "conflict", details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
