"""Every result the README and the docs quote is the tool's own text in a committed file under
results/: a block marked `<!-- quoted from results/... -->` in README.md or any docs/*.md must
stand line for line in that file, so a re-run that changes the numbers fails here until the
page says the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- quoted from (results/\S+) -->\n```[a-z]*\n(.*?)```", re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def quoted_blocks(text: str) -> list[tuple[str, list[str]]]:
    return [
        (src, [ln for ln in body.splitlines() if ln.strip()]) for src, body in MARK.findall(text)
    ]


def missing_lines(src: str, lines: list[str], root: Path = ROOT) -> list[str]:
    have = {ln.strip() for ln in (root / src).read_text(encoding="utf-8").splitlines()}
    return [ln for ln in lines if ln.strip() not in have]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_quotes_its_results_verbatim(page):
    text = page.read_text(encoding="utf-8")
    # a marker that the pattern does not take (no fenced block right after it) is a quote
    # that goes unchecked: refused
    assert text.count("<!-- quoted from ") == len(MARK.findall(text)), page
    for src, lines in quoted_blocks(text):
        assert (ROOT / src).is_file(), f"{page.name} quotes {src}, which does not exist"
        missing = missing_lines(src, lines)
        assert lines and not missing, f"{page.name} quotes lines not in {src}: {missing}"


def test_the_readme_quotes_the_headline_and_the_quick_start():
    srcs = {src for src, _ in quoted_blocks((ROOT / "README.md").read_text(encoding="utf-8"))}
    assert any(s.startswith("results/cifar10_subset_cpu/") for s in srcs)
    assert "results/quickstart_cpu/output.txt" in srcs


def test_the_check_sees_a_changed_number(tmp_path):
    text = "<!-- quoted from results/x.md -->\n```\n- a 1.0\n\n- b 2.0\n```\n"
    assert quoted_blocks(text) == [("results/x.md", ["- a 1.0", "- b 2.0"])]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.md").write_text("- a 1.0\n- b 2.1\n", encoding="utf-8")
    assert missing_lines("results/x.md", ["- a 1.0", "- b 2.0"], tmp_path) == ["- b 2.0"]
