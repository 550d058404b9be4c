"""Groups per class in the carved test set: today's rule (as many groups as the size allows)
against the rule before issue 31 (groups in a seeded order, the first that sum to k), on the
same listing in the same run.

    python examples/natural_demo/compare_carving.py examples/natural_demo/carved.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np

from ssl_robustness.config import load_config
from ssl_robustness.data.prepare import list_data
from ssl_robustness.data.split import carve


def seeded_order_rule(parts, k, rng, cap=None):
    """The rule before: groups in a seeded random order, earlier groups preferred (a subset
    sum walked back from the last group); long groups as likely as short ones."""
    order = rng.permutation(len(parts))
    sizes = [len(parts[i]) for i in order]
    mask = (1 << (k + 1)) - 1
    prefix = [1]
    for s in sizes:
        prefix.append((prefix[-1] | (prefix[-1] << s)) & mask)
    empty = np.array([], dtype=np.int64)
    if not (prefix[-1] >> k) & 1:
        return empty, empty
    taken, left = [], k
    for i in range(len(sizes) - 1, -1, -1):
        if (prefix[i] >> left) & 1:
            continue
        taken.append(parts[order[i]])
        left -= sizes[i]
    return np.sort(np.concatenate(taken)), empty


def test_groups(data) -> list[int]:
    test = data.indices("test")
    return [
        len(set(data.item_group[test[data.labels[test] == c]].tolist()))
        for c in range(data.num_classes)
    ]


def main(config: str) -> None:
    cfg = load_config(config)
    out = Path("runs") / "compare_carving"
    now = test_groups(list_data(cfg.data, out, cfg.evaluation))
    with mock.patch.object(carve, "take_with_aside", seeded_order_rule):
        try:
            before = test_groups(list_data(cfg.data, out, cfg.evaluation))
        except Exception as err:  # the old rule may not reach every size
            before = []
            print(f"rule before: {err}")
    k = cfg.data.split.test_per_class
    print(f"test groups per class ({k} test images per class), class by class:")
    if before:
        print(f"  rule before (seeded order): {before}  median {np.median(before):.0f}")
    print(f"  today (most groups):        {now}  median {np.median(now):.0f}")
    few = sum(n < 5 for n in now)
    print(
        f"  classes with fewer than 5 test groups: before {sum(n < 5 for n in before)}, today {few}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
