"""The one exception type for mistakes a user can fix; the CLI prints its message, no traceback."""


class UserError(Exception):
    """A problem with the user's input (files, options, data) and what to do about it."""
