"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class BenchError(Exception):
    """A problem the user can fix (bad option, missing data, unwritable directory).

    Raised anywhere in ``bench``; caught once in the CLI, which prints ``error: <message>``
    and exits with status 2.  Never used for bugs: those should keep their traceback.
    """


class ReportFailed(BenchError):
    """The report could not be rendered from tables that are complete: a bug to report, not a
    user's mistake, so its own exit status; the traceback is kept in the output folder."""

    exit_code = 3


class DatasetNotFoundError(BenchError):
    """A dataset's files are nowhere to be found (as opposed to found but corrupt)."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: an exception as a one-line error can quote it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
