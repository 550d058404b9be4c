"""Duplicates of held-out images leave the training side; the held-out side is never touched.

A training-side copy of a test image (a CIFAR near-duplicate, a re-upload, the next frame of a
track) turns a test image into a recall test. Where val and test are carved, `action: group`
keeps each set in one split and `drop` keeps one image; where the source fixes them (official
splits, list files, `test_root`) neither can move a test image, so the copies in the pool
would stay: they are dropped instead, with both actions, and counted. Dropping a test copy
would change the test set (and, unbalancing it, the verdict's metric): never done.
"""

from __future__ import annotations

from .duplicates import LINK, DuplicateSet

HELD_OUT = ("val", "test")
PURGED = "training-side copy of held-out"  # the words that mark a purge among the drops


def held_out_copies(
    sets: list[DuplicateSet], listed: dict[str, str]
) -> tuple[dict[str, str], list[DuplicateSet]]:
    """(item -> why) for the training-side members of every set or near link holding a
    held-out image (`listed`: each item's split as the source lists it), and the sets (links
    left out) holding none."""
    purge: dict[str, str] = {}
    rest = []
    for s in sets:
        held = [i for i in s.items if listed.get(i) in HELD_OUT]
        if not held:
            if s.kind != LINK:
                rest.append(s)
            continue
        for item in s.items:
            if listed.get(item) not in HELD_OUT:
                purge.setdefault(
                    item, f"{item}: {PURGED} {held[0]} ({listed[held[0]]}, {s.kind} duplicate)"
                )
    return purge, rest


def purged_count(dropped: list[str]) -> int:
    return sum(PURGED in d for d in dropped)


def copies_left(sets: list[DuplicateSet], where: dict[str, str]) -> int:
    """Pool and probe-set images in a set or near link with a val or test image, where they
    ended up (`where`: item -> pool, probe set, val, test), each counted once: 0 after a
    purge; with action report, the copies a user weighs before choosing drop or group."""
    left = {
        i
        for s in sets
        if any(where.get(j) in HELD_OUT for j in s.items)
        for i in s.items
        if where.get(i) in ("pool", "probe set")
    }
    return len(left)


def held_out_copy_lines(report: dict | None, action: str) -> list[str]:
    """`data stats`' line on training-side copies of val/test images."""
    if not report:
        return []
    purged, left = report.get("purged", 0), report.get("held_out_copies_left", 0)
    lines = []
    if purged:
        lines.append(
            f"duplicates: {purged} training-side copies of val/test images left the pool (the "
            "val and test sets are never touched)"
        )
    if left:
        fix = (
            "set data.duplicates.action: drop or group to purge them"
            if action == "report"
            else "they are near pairs across two sets (links), which only the purge of listed "
            "(official) val/test copies follows: a carved split may put a link's two images "
            "on both sides; raise data.duplicates.near_similarity to see fewer such pairs"
        )
        lines.append(
            f"duplicates: {left} pool or probe-set images are copies of val/test images: "
            f"those val/test images are half-seen; {fix}"
        )
    return lines
