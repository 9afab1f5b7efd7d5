"""The error every tool raises for a failure its caller can act on."""


class ToolError(Exception):
    """A failure the caller can act on, with one of the contract's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
