"""Draws in whole groups: exactly k images per class made of whole groups (a subset sum), so a
group never straddles two splits, and of as many groups as the sizes allow."""

from __future__ import annotations

import numpy as np

from ...errors import UserError


def group_members(members: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """`members` (item indices) partitioned by group, groups in order of their id."""
    if len(members) == 0:
        return []
    ids = groups[members].astype(str)
    order = np.argsort(ids, kind="stable")
    ids, members = ids[order], members[order]
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.split(members, cuts)


def reachable(sizes: list[int], limit: int) -> int:
    """Bitset (a Python int) of every total up to `limit` that some whole groups of `sizes` sum
    to: bit s is set when s images can be taken in whole groups."""
    mask = (1 << (limit + 1)) - 1
    reach = 1
    for s in sizes:
        reach = (reach | (reach << s)) & mask
    return reach


def largest_at_most(reach: int, k: int) -> int:
    """The largest total <= k set in `reach`."""
    reach &= (1 << (k + 1)) - 1
    return reach.bit_length() - 1


def take_whole_groups(
    parts: list[np.ndarray],
    k: int,
    rng: np.random.Generator,
    cap: int | None = None,
) -> np.ndarray:
    """Exactly `k` items in whole groups, as MANY groups as possible, ties broken by a seeded
    random order of the groups; empty if no such choice exists.

    Why most groups: a test class of one 20-frame track measures one video, not the class. Most
    groups means small groups first; `cap` (data.split.max_per_group) lets a long group in too:
    it gives at most `cap` of its images (a seeded choice), and `set_aside` returns the rest."""
    taken, _ = take_with_aside(parts, k, rng, cap)
    return taken


def take_with_aside(
    parts: list[np.ndarray],
    k: int,
    rng: np.random.Generator,
    cap: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`take_whole_groups` and the images of its chosen groups beyond `cap` (never trained on:
    they share a group with the images taken)."""
    empty = np.array([], dtype=np.int64)
    if k <= 0:
        return empty, empty
    order = rng.permutation(len(parts))
    shuffled = [rng.permutation(parts[i]) for i in order]  # which images a capped group gives
    sizes = [len(p) if cap is None else min(len(p), cap) for p in shuffled]
    # most[s]: the most groups summing to exactly s (-1: unreachable); used[i, s]: the best
    # total s after group i takes group i (a 0/1 knapsack that counts groups)
    most = np.full(k + 1, -1, dtype=np.int64)
    most[0] = 0
    used = np.zeros((len(sizes), k + 1), dtype=bool)
    for i, w in enumerate(sizes):
        if w > k or w == 0:
            continue
        with_it = np.full(k + 1, -1, dtype=np.int64)
        with_it[w:] = np.where(most[:-w] >= 0, most[:-w] + 1, -1)
        better = with_it > most
        used[i] = better
        most = np.where(better, with_it, most)
    if most[k] < 0:
        return empty, empty
    taken, aside, left = [], [], k
    for i in range(len(sizes) - 1, -1, -1):
        if left and used[i, left]:
            taken.append(shuffled[i][: sizes[i]])
            aside.append(shuffled[i][sizes[i] :])
            left -= sizes[i]
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(aside + [empty]))


def probe_in_whole_groups(
    pool_order: list[np.ndarray],
    groups: np.ndarray,
    target: int,
    limits: np.ndarray,
    asked: bool,
    class_names: list[str],
    seed: int,
    class_ids: np.ndarray,
) -> np.ndarray:
    """The disjoint probe set in whole groups: the same size per class, `target` when `asked`,
    else the largest every class can make up to `target`; class c gives at most `limits[c]`
    (what its pretraining subsets leave)."""
    parts = [group_members(np.sort(o), groups) for o in pool_order]
    reach = [
        reachable([len(p) for p in ps], max(int(lim), 0))
        for ps, lim in zip(parts, limits, strict=True)
    ]
    common = -1
    for r in reach:
        common &= r
    common &= ~1  # at least one image per class
    if asked:
        per_class = target
    else:  # the common size nearest below the default, else the smallest above it
        below = largest_at_most(common, target)
        above = common >> (target + 1)
        per_class = below if below > 0 else (target + _lowest_bit(above) if above else 0)
    if per_class < 1 or not (common >> per_class) & 1:
        want = max(per_class, 1)
        # the binding class: one that cannot give the size, the one that gives least first
        short = [c for c, r in enumerate(reach) if not (r >> want) & 1] or list(range(len(reach)))
        c = min(short, key=lambda c: largest_at_most(reach[c], max(int(limits[c]), 0)))
        own = largest_at_most(reach[c], want)
        sizes = sorted((len(p) for p in parts[c]), reverse=True)
        every = largest_at_most(common, max(per_class, 1)) if common > 0 else 0
        default = (
            ""
            if asked
            else "; evaluation.probe_per_class is not set (its default comes from the smallest "
            "class): drop small classes with data.classes.min_count"
        )
        raise UserError(
            f"evaluation.probe_per_class: {max(per_class, 1)} images per class cannot be made of "
            f"whole data.group_by groups: class '{class_names[c]}' can give at most {max(own, 0)} "
            f"and leave its pretraining subsets their images (its pool holds {len(sizes)} "
            f"groups of {', '.join(map(str, sizes[:8]))}{' ...' * (len(sizes) > 8)} images); "
            "the largest size every class can give "
            f"is {max(every, 0)}{default}"
        )
    chosen = [
        take_whole_groups(ps, per_class, np.random.default_rng([seed, int(class_ids[c]), 29]))
        for c, ps in enumerate(parts)
    ]
    return np.sort(np.concatenate(chosen))


def _lowest_bit(x: int) -> int:
    """1 + the index of x's lowest set bit (x > 0)."""
    return (x & -x).bit_length()
