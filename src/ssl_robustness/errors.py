"""One exception type for every mistake a user can fix (bad config, bad data, bad checkpoint).

The CLI prints its message and exits with status 2, without a traceback: the message itself
must name the file, line, key or value at fault. The CLI treats a file operation the OS
refused for a reason the user can fix (permission denied, is a folder, read-only or full
disk) the same way, naming the path; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An input problem the user can fix; the message says what and where."""
