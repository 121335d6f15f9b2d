"""The exception type for mistakes a user can fix (the CLI prints its message, no traceback), and its torchrun form."""


class UserError(ValueError):
    """A problem with the user's input (files, options, data) and what to do about it.

    A ValueError too, so code written against the Python API's earlier ValueErrors still catches it.
    """


class PeerError(UserError):
    """A failure reported by rank 0: raised on the other ranks (and on rank 0 when another rank
    failed), so that every rank stops together and the message is shown once (debias.distributed)."""
