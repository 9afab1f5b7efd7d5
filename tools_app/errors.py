"""The error every tool raises for a failure its caller can act on."""

# Every error code of the contract (DESIGN.md): what a call's `error.code` can be.
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "unknown_tool",
        "invalid_arguments",
        "unauthorized",
        "forbidden",
        "provider_unavailable",
        "provider_error",
        "timeout",
        "overloaded",
        "budget_exceeded",
        "cancelled",
        "shutting_down",
        "internal",
    }
)


class ToolError(Exception):
    """A failure the caller can act on, with one of the contract's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
