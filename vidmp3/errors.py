"""The project's own error types, so the workflow can report them plainly (one line, no traceback)."""


class InputError(ValueError):
    """An input (file, sheet row, config key) is missing or wrong; the message names it."""


class OutputError(OSError):
    """An output could not be written (full disk, quota, read-only folder); the message names its path."""
