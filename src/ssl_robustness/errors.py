"""One exception type for every mistake a user can fix (bad config, bad data, bad checkpoint).

The CLI prints its message and exits with status 2, without a traceback: the message itself
must name the file, line, key or value at fault.
"""


class UserError(Exception):
    """An input problem the user can fix; the message says what and where."""
