"""User-facing errors.

Anything raised as :class:`AffectFusionError` is a problem with the user's input (file, field,
config key, name) and is shown by the CLI as one line without a traceback. Everything else is a
bug and keeps its traceback.
"""


class AffectFusionError(Exception):
    """A clear, actionable problem with user input."""
