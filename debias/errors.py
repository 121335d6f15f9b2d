"""The one exception type for mistakes a user can fix; the CLI prints its message, no traceback."""


class UserError(ValueError):
    """A problem with the user's input (files, options, data) and what to do about it.

    A ValueError too, so code written against the Python API's earlier ValueErrors still catches it.
    """
