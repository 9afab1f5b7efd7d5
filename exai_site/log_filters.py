"""The filter every log handler runs: no API key, token or password is ever written."""

import logging

from exai_site.redaction import scrub


class RedactSecrets(logging.Filter):
    """Replace secrets in a record's message (and its formatted exception) before any handler writes it.

    File contents are kept out of logs at the source instead: the provider SDKs are only ever
    given file objects, never bytes, and their loggers stay at WARNING (settings.LOGGING).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class DropSdkChatter(logging.Filter):
    """Keep only warnings and errors from the provider SDKs and their HTTP clients.

    openai 1.x (which our version range admits) logs every request body at DEBUG
    ("Request options: ..."): prompts, and with them file contents. Levels alone do not
    hold: OPENAI_LOG=debug resets the openai logger's level when the SDK is imported. A
    filter on the openai logger itself would not hold either: the dump comes from a child
    logger (openai._base_client), whose records reach the handlers without passing their
    parent's filters. So every handler runs this.
    """

    NAMESPACES = frozenset({"openai", "zhipuai", "httpx", "httpcore", "httpx2", "httpcore2"})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.partition(".")[0] not in self.NAMESPACES
