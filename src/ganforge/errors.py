"""The one exception type for bad user input: the CLI prints its message and exits with status 2."""


class GanforgeError(Exception):
    """A problem the user can fix: the message names the thing and the fix."""


class Diverged(GanforgeError):
    """A loss, gradient or weight became NaN/inf at `step`; the trainer adds which checkpoint is still good."""

    def __init__(self, step: int, what: str):
        super().__init__(f"training diverged at step {step}: {what} became NaN or infinite")
        self.step, self.what = step, what
