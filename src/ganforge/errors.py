"""The one exception type for bad user input: the CLI prints its message and exits with status 2."""


class GanforgeError(Exception):
    """A problem the user can fix: the message names the thing and the fix."""
