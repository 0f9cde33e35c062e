"""User-facing errors: the CLI prints one line and exits 2, no traceback."""


class ScalelabError(Exception):
    """A problem with the user's input or environment that the user can fix.

    The message names the problem and the fix, in one line.
    """

    exit_code = 2
