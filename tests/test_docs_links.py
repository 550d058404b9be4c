"""Every relative link in README.md and docs/*.md resolves: to a file of the repository and,
for `#anchor` links, to a heading of that file (GitHub's slugs), so moving a section between
pages cannot leave a link pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to
    hyphens (hyphens and underscores kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, GitHub-style: a repeated slug gets -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    """The targets of the markdown links outside code."""
    prose = CODE.sub("", FENCE.sub("", text))
    return LINK.findall(prose)


def broken_links(page: Path, text: str, root: Path = ROOT) -> list[str]:
    """The relative links of `page` (whose content is `text`) that resolve to nothing."""
    bad = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, file:
            continue
        path, _, anchor = target.partition("#")
        dest = page if not path else (page.parent / path).resolve()
        if not dest.exists() or root.resolve() not in (dest, *dest.parents):
            bad.append(f"{target}: no such file")
        elif anchor and (
            dest.is_dir()
            or dest.suffix != ".md"
            or anchor not in anchors(dest.read_text(encoding="utf-8"))
        ):
            bad.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page, page.read_text(encoding="utf-8"))


def test_the_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = {t.partition("#")[0] for t in links(readme)}
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in targets]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_github_slugs():
    assert slug("Does the tool find Liu et al.'s effect on real images?") == (
        "does-the-tool-find-liu-et-als-effect-on-real-images"
    )
    assert slug("4. Where things go") == "4-where-things-go"
    assert slug("rwSAM: re-weighted sharpness-aware pretraining") == (
        "rwsam-re-weighted-sharpness-aware-pretraining"
    )
    assert slug("`data.group_by`") == "datagroup_by"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_checker_fails_on_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A section\n", "utf-8")
    page = tmp_path / "README.md"
    text = (
        "# Title\n\n## Here\n\n"
        "[ok](docs/other.md) [ok](docs/other.md#a-section) [ok](#here) [ok](https://x.org/y)\n"
        "[gone](docs/missing.md) [no heading](docs/other.md#nowhere) [no anchor](#there)\n"
        "`[in code](docs/missing2.md)`\n\n```\n[in a fence](docs/missing3.md)\n```\n"
    )
    page.write_text(text, "utf-8")
    assert broken_links(page, text, tmp_path) == [
        "docs/missing.md: no such file",
        "docs/other.md#nowhere: no heading '#nowhere' in other.md",
        "#there: no heading '#there' in README.md",
    ]
