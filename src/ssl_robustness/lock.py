"""One process per output directory: an OS file lock held while a command writes there.

Two `run`s (or a `run` and a `data stats`) on one directory would overwrite each other's
checkpoints, manifests and tables. The lock is `fcntl.flock` on a file in the directory, so
the kernel drops it when the holder exits or is killed: a crashed run never leaves a stale
lock. The file records who holds it (pid, host, command, since when) for the message a
second process prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError
from .layout import LOCK_FILE, RunLayout

LOCK_NAME = LOCK_FILE


def lock_path(directory: Path) -> Path:
    return RunLayout(Path(directory)).lock


def describe_holder(directory: Path) -> str:
    """Who holds the lock, from what the holder wrote into the lock file."""
    for _ in range(20):  # the holder writes its details just after it takes the lock
        try:
            info = json.loads(lock_path(directory).read_text(encoding="utf-8"))
            return (
                f"pid {info['pid']} on host {info['host']} ({info.get('command', '?')}), "
                f"since {info['since']}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "another process (it has not written its details)"


def held_elsewhere(directory: Path) -> bool:
    """Whether another process (a job, a second `run`) holds the directory's lock now; a
    file system without locks counts as held (someone may be writing)."""
    try:
        fd = os.open(lock_path(directory), os.O_RDONLY)
    except OSError:
        return False  # no lock file: nobody ever worked there
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_lock_file(directory: Path) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path(directory), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(
            f"output_dir: cannot write into {directory}: {exc.strerror}"
            " (choose a writable output_dir)"
        ) from None


def _try_flock(fd: int, directory: Path, blocking: bool) -> bool:
    """True once locked; False if another process holds it (non-blocking only)."""
    flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        # ENOLCK / EOPNOTSUPP: a file system without locks (some network mounts); a missing
        # guard beats refusing to run at all.
        print(
            f"warning: {directory}: file locks not supported ({exc.strerror}); "
            "make sure no other run uses this output directory",
            file=sys.stderr,
        )
        return True


def _write_holder(fd: int, command: str) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
    }
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextlib.contextmanager
def output_lock(
    directory: Path,
    command: str,
    *,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the directory's lock for the body; if taken: UserError naming the holder, or, with
    `wait`, block until it is free (`on_wait` is told who is being waited for)."""
    directory = Path(directory)
    fd = _open_lock_file(directory)
    try:
        if not _try_flock(fd, directory, blocking=False):
            holder = describe_holder(directory)
            if not wait:
                raise UserError(
                    f"{directory}: another ssl-robustness process is using this output "
                    f"directory: {holder}. Wait for it (--wait), stop it, or choose another "
                    "output_dir."
                )
            if on_wait is not None:
                on_wait(holder)
            _try_flock(fd, directory, blocking=True)
        _write_holder(fd, command)
        try:
            yield lock_path(directory)
        finally:
            os.ftruncate(fd, 0)  # the details describe a holder only while it holds the lock
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
