"""The exception a person running a command sees as one sentence."""


class AutograderError(Exception):
    """A problem the instructor can fix; its text is one sentence saying what to do.

    The command line prints it without a traceback and exits with status 1.
    """
