"""Failpoints for tests: kill the process at a named point, to prove a study resumes.

A failpoint is a call `reached("<point>")` in the code. It does nothing unless the
environment variable `SSL_ROBUSTNESS_KILL_AT` is `"<point>:<n>"`: then the n-th time that
point is reached (counting from 1, in this process), the process sends itself SIGKILL, the
one signal that runs no cleanup (no `finally`, no atomic-write rollback): what a power cut,
the OOM killer or a cluster's preemption does. `tests/test_kill_resume.py` kills a study
this way at each point and checks that a re-run resumes to the same tables.

Points:
- `image-cache`: once per image decoded into the image cache (data/store/images.py);
- `train-step`: once per optimisation step of the shared training loop (engine/loop.py);
  pretraining, fine-tuning and the SGD probe all go through it, so n picks which;
- `tables`: before each table file `write_tables` writes (report/tables.py);
- `report`: before each figure of the report is written (report/figures.py).

The variable is read once, at the first `reached` call; without it a call costs one
comparison. A malformed value raises UserError rather than silently never firing.
"""

from __future__ import annotations

import os
import signal
import threading

from .errors import UserError

ENV_VAR = "SSL_ROBUSTNESS_KILL_AT"
POINTS = ("image-cache", "train-step", "tables", "report")

_UNREAD = object()
_target: object | tuple[str, int] | None = _UNREAD
_count = 0
_lock = threading.Lock()  # image-cache points are reached from decoder threads


def parse(value: str | None) -> tuple[str, int] | None:
    """`"<point>:<n>"` as (point, n); None for an unset or empty value."""
    if not value:
        return None
    point, sep, n = value.rpartition(":")
    if not sep or point not in POINTS or not n.isdigit() or int(n) < 1:
        raise UserError(
            f"{ENV_VAR}={value!r}: expected <point>:<n> with a point among "
            f"{', '.join(POINTS)} and n >= 1, e.g. train-step:3"
        )
    return point, int(n)


def reset() -> None:
    """Forget the variable and the count: the next `reached` reads the environment again."""
    global _target, _count
    with _lock:
        _target, _count = _UNREAD, 0


def reached(point: str) -> None:
    """Mark that `point` was reached; SIGKILL this process if it is the armed n-th time."""
    global _target, _count
    target = _target
    if target is None:
        return
    if target is _UNREAD:
        with _lock:
            if _target is _UNREAD:
                _target = parse(os.environ.get(ENV_VAR))
            target = _target
        if target is None:
            return
    armed, n = target  # type: ignore[misc]
    if point != armed:
        return
    with _lock:
        _count += 1
        fire = _count == n
    if fire:
        os.kill(os.getpid(), signal.SIGKILL)
