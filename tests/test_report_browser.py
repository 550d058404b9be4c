"""The report in a real browser: headless Chromium renders a report built here and must show
every image, let no text run out of its box, hide no table column at 1400 px, and print to
PDF with every column. Skipped where no Chromium is installed (Debian: `apt-get install
chromium poppler-utils`; `.ci/run` installs both, so CI runs it). The screenshot and the PDF
are left in the test's tmp_path as artefacts, never committed."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import make_run

from ssl_robustness.report import render as R

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
PDFTOTEXT = shutil.which("pdftotext")
MISSING = "no chromium or pdftotext binary (Debian: apt-get install chromium poppler-utils)"
# .ci/run installs both and sets this, so CI can never pass by skipping the browser
REQUIRED = os.environ.get("SSL_ROBUSTNESS_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or PDFTOTEXT is None) and not REQUIRED, reason=MISSING
)

# Run by the page after load (a copy of the report with this script added): records what a
# reader could not see, as JSON in <pre id="layout-check">, which --dump-dom returns. A
# scroll box with a hidden column, built and measured first, shows the check can fail.
CHECK = """<script>
window.addEventListener("load", function () {
  var out = {images: [], clipped: [], past_edge: [], tables: 0};
  var hidden = function (el) {
    var s = getComputedStyle(el);
    return el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 &&
      el.tagName !== "HTML" && el.tagName !== "BODY";
  };
  var control = document.createElement("div");
  control.style.cssText = "overflow-x:auto;width:200px";
  control.innerHTML = "<table><tr><td>" + "x".repeat(80) + "</td><td>last</td></tr></table>";
  document.body.appendChild(control);
  out.control_caught = hidden(control);
  control.remove();
  var right = document.body.getBoundingClientRect().right;
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { out.images.push(img.alt); }
  });
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.tagName === "SCRIPT") { return; }
    var what = el.tagName + " " + (el.textContent || el.alt || "").trim().slice(0, 60);
    if (hidden(el)) { out.clipped.push(what); }
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > right + 1) { out.past_edge.push(what); }
  });
  out.tables = document.querySelectorAll("table").length;
  out.page = [document.documentElement.scrollWidth, document.documentElement.clientWidth];
  var pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    if CHROMIUM is None or PDFTOTEXT is None:
        pytest.fail(f"{MISSING}, and SSL_ROBUSTNESS_REQUIRE_BROWSER=1 asks for the browser test")
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report built here from a synthetic run directory, or the one SSL_ROBUSTNESS_BROWSER_
    REPORT names (.ci/run passes the quick start's after running it)."""
    tmp = tmp_path_factory.mktemp("browser")
    given = os.environ.get("SSL_ROBUSTNESS_BROWSER_REPORT")
    if given:
        return Path(given).resolve(), tmp
    run, _ = make_run(tmp, tsne=True)
    return R.write_report(run), tmp


def test_report_shows_every_image_and_hides_no_column_at_1400px(report):
    page, tmp = report
    checked = tmp / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "\n</body>"))
    url = checked.as_uri()
    dom = chromium(
        "--window-size=1400,1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
        profile=tmp / "profile",
    ).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run"
    out = json.loads(html.unescape(found.group(1)))
    assert out["control_caught"], "the check misses a column hidden in a scroll box"
    assert out["tables"] >= 8
    assert out["images"] == [], f"images that did not load: {out['images']}"
    assert out["clipped"] == [], f"boxes whose content is cut off: {out['clipped']}"
    assert out["past_edge"] == [], f"content past the page's right edge: {out['past_edge']}"
    assert out["page"][0] <= out["page"][1], "the page scrolls sideways at 1400 px"
    chromium(
        "--window-size=1400,6000",
        f"--screenshot={tmp / 'report-1400.png'}",
        page.as_uri(),
        profile=tmp / "profile",
    )


def test_report_prints_to_pdf_with_every_column(report):
    page, tmp = report
    pdf = tmp / "report.pdf"
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri(), profile=tmp / "p")
    text = subprocess.run(
        [PDFTOTEXT, "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = re.sub(r"\s+", "", text)
    source = page.read_text()
    tables = re.findall(r"<table.*?</table>", source, re.S)
    assert len(tables) >= 8
    missing = []
    for table in tables:
        headers = [html.unescape(h) for h in re.findall(r"<th[^>]*>([^<]*)</th>", table)]
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
        last_cells = [
            html.unescape(c) for r in rows for c in re.findall(r"<td>([^<]*)</td>", r)[-1:]
        ]
        for cell in [headers[-1], *last_cells[-1:]]:
            if cell.strip() and re.sub(r"\s+", "", cell) not in flat:
                missing.append(cell)
    assert missing == [], f"columns missing from the printed page: {missing}"
