"""One exception type for every mistake a user can fix (bad config, bad data, bad checkpoint).

The CLI prints its message and exits with status 2, without a traceback: the message itself
must name the file, line, key or value at fault. The CLI treats a file operation the OS
refused for a reason the user can fix (permission denied, is a folder, read-only or full
disk) the same way, naming the path; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An input problem the user can fix; the message says what and where."""


def utf8_text(data: bytes, path: object, what: str = "the file") -> str:
    """`data` decoded as UTF-8, or a UserError naming the line of its first undecodable byte:
    a file in another encoding (Latin-1) is refused, never guessed at."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save {what} as UTF-8"
        ) from None
