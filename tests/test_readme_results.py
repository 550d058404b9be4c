"""Every result the README quotes is the tool's own text in a committed file under results/:
a block marked `<!-- quoted from results/... -->` must stand line for line in that file, so a
re-run that changes the numbers fails here until the README says the same."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- quoted from (results/\S+) -->\n```[a-z]*\n(.*?)```", re.S)


def quoted_blocks(text: str) -> list[tuple[str, list[str]]]:
    return [
        (src, [ln for ln in body.splitlines() if ln.strip()]) for src, body in MARK.findall(text)
    ]


def test_the_readme_quotes_its_results_verbatim():
    blocks = quoted_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(src.startswith("results/cifar10_subset_cpu/") for src, _ in blocks)
    for src, lines in blocks:
        have = {ln.strip() for ln in (ROOT / src).read_text(encoding="utf-8").splitlines()}
        missing = [ln for ln in lines if ln.strip() not in have]
        assert lines and not missing, f"README quotes lines not in {src}: {missing}"


def test_the_check_sees_a_changed_number():
    text = "<!-- quoted from results/x.md -->\n```\n- a 1.0\n\n- b 2.0\n```\n"
    assert quoted_blocks(text) == [("results/x.md", ["- a 1.0", "- b 2.0"])]
