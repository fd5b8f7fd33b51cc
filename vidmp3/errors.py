"""The one error type for bad user input, so the workflow can report it plainly."""


class InputError(ValueError):
    """An input (file, sheet row, config key) is missing or wrong; the message names it."""
