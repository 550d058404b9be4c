"""Score the near-duplicate sets of a `data stats` run on the natural demo against the truth
`make_data.py` wrote (`animals.csv`: which animal every file shows).

A near set is *mixed* when it holds two animals (a false merge); a re-sighted animal (one animal
in two or more tracks) is *linked* when some unmixed set spans two of its tracks.

    python examples/natural_demo/score_duplicates.py runs/natural_demo_data/animals.csv \
        runs/natural_demo_official/data/stats.json
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

FILE = re.compile(r"(class_\d+/track\d+_\w+\.png)$")
TRACK = re.compile(r"track(\d+)")


def score(animals_csv: Path, stats_json: Path) -> str:
    with animals_csv.open(newline="") as f:
        shows = {r["file"]: (r["class"], r["animal"]) for r in csv.DictReader(f)}
    sets = [s for s in json.loads(stats_json.read_text())["duplicates"]["sets"]]
    near = [s for s in sets if s["kind"] == "near"]

    def animal(item: str) -> tuple[str, str]:
        m = FILE.search(item)
        assert m is not None and m.group(1) in shows, f"{item}: not a file make_data wrote"
        return shows[m.group(1)]

    def tracks(items: list[str]) -> set[str]:
        return {TRACK.search(i).group(1) for i in items}  # type: ignore[union-attr]

    tracks_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for file, who in shows.items():
        if "_frame" in file:  # a track's frames; copies of test images are not sightings
            tracks_of[who].add(TRACK.search(file).group(1))  # type: ignore[union-attr]
    resighted = {who for who, t in tracks_of.items() if len(t) > 1}
    mixed = [s for s in near if len({animal(i) for i in s["items"]}) > 1]
    linked = {animal(s["items"][0]) for s in near if s not in mixed and len(tracks(s["items"])) > 1}
    largest = max((len(s["items"]) for s in near), default=0)
    return (
        f"near sets {len(near)}, mixing two animals {len(mixed)}, largest {largest}; "
        f"re-sighted animals linked across tracks {len(linked & resighted)} of {len(resighted)}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(score(Path(sys.argv[1]), Path(sys.argv[2])))
