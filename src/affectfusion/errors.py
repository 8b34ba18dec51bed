"""User-facing errors.

Anything raised as :class:`AffectFusionError` is a problem with the user's input (file, field,
config key, name) and is shown by the CLI as one line without a traceback. Everything else is a
bug and keeps its traceback.
"""


class AffectFusionError(Exception):
    """A clear, actionable problem with user input."""


ECHO_CHARS = 80


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr`` of a value a user or client gave, cut to ``limit`` characters with ``...``: an error names
    what was wrong without sending a megabyte of it back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
