""".report: the HTML page's contents and escaping, writing it without ever leaving half a
file, the growth chart's seam, and the page itself in headless Chromium (console errors, one
cell per pool page, a click shows what `!pool` prints, a screenshot), skipped with a reason on
a machine without a browser."""
from __future__ import annotations

import base64
import gzip
import html
import json
import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from commands.core.report import build_report, growth_chart
from commands.ext.vm import read_vm
from commands.session import Session
from commands.testing import run
from kdsim import files as kdsim_files
from kdsim.scenarios import boot
from tests.commands.core.chromium import Chromium, find_chromium
from tests.commands.ext.test_poolmap import session_for

CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: install the distribution's package "
                             "(apt-get install chromium; .ci/run does) to test the report in a "
                             "browser")


def _pages(text: str) -> dict[str, str]:
    """The pages' !pool texts the report embeds (JSON, gzip, base64)."""
    found = re.search(r'<script type="application/octet-stream" id="pages">(.*?)</script>',
                      text, re.S)
    assert found is not None
    return json.loads(gzip.decompress(base64.b64decode(found[1])))


# -- the page -------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_cell_per_page_and_each_page_as_pool_prints_it(arch: str, tmp_path: Path) -> None:
    session, blocks = session_for(arch)
    path = tmp_path / "pool.html"
    written = run(session, f".report {path}")
    text = path.read_text(encoding="utf-8")
    vm = read_vm(session.target)
    assert written == (f"Report written to {path} ({len(text.encode())} bytes): NonPaged pool "
                       f"{vm.nonpaged_usage} pages, Paged pool {vm.paged_usage} pages\n")
    assert text.count('<div class="cell ') == vm.nonpaged_usage + vm.paged_usage
    pages = _pages(text)
    fmt = session.target.arch.fmt_ptr
    page = blocks["ReEv"] & ~0xFFF
    assert pages[fmt(page)] == run(session, f"!pool {page:x}")
    assert text.count('<div class="cell pinned"') == 1
    assert "https://" not in text and "http://" not in text.replace(
        "http-equiv", "") and "default-src 'none'" in text


def test_tags_and_descriptions_from_memory_and_files_are_escaped(tmp_path: Path) -> None:
    session, _ = session_for("x86")
    tags = tmp_path / "pooltag.txt"
    tags.write_text("ReEv - evil.sys - <script>alert('x')</script> & <b>bold</b>\n")
    session.settings["pooltag_file"] = str(tags)
    text, _ = build_report(session)
    assert "<script>alert" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)
    assert len(scripts) == 2 and not any("alert" in s for s in scripts)
    assert html.unescape("&#39;") == "'"


def test_growth_is_charted_when_snapshots_are_given_and_said_absent_otherwise() -> None:
    session, _ = session_for("x86")
    text, _ = build_report(session)
    assert "No !pooldiff snapshots in this session" in text and "<polyline" not in text
    series = [("start", 0, {"Ntfx": 4096, "Big ": 8192}), ("later", 500, {"Ntfx": 8192}),
              ("end", 1000, {"Ntfx": 16384, "Big ": 8192})]
    chart = growth_chart(series, ["Ntfx", "Big "])
    assert chart is not None and [line["tag"] for line in chart["lines"]] == ["Ntfx", "Big "]
    assert chart["lines"][0]["points"] == "40.0,167.5 350.0,115.0 660.0,10.0"
    assert growth_chart([], ["Ntfx"]) is None
    text, _ = build_report(session, growth=series)
    charted = re.findall(r"<polyline [^>]*><title>([^<]*)</title>", text)
    assert {"Ntfx", "Big "} <= set(charted) and "No !pooldiff snapshots" not in text


# -- writing it -------------------------------------------------------------------------------------
def test_an_existing_report_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    session, _ = session_for("x86")
    path = tmp_path / "pool.html"
    path.write_text("the old report")
    os.chmod(path, 0o640)
    assert run(session, f".report {path}").startswith("Report written to")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    path.write_text("the old report")

    def fail(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kdsim_files.os, "replace", fail)
    assert run(session, f".report {path}") == (
        f"Unable to write report '{path}': No space left on device\n")
    assert path.read_text() == "the old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool.html"]


def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    session, _ = session_for("x86")
    fifo, link, real = tmp_path / "fifo", tmp_path / "link.html", tmp_path / "real.html"
    os.mkfifo(fifo)
    real.write_text("kept")
    link.symlink_to(real)
    for target in (tmp_path, fifo):
        assert run(session, f".report {target}") == (
            f"Unable to write report '{target}': it exists and is not a regular file\n")
    # a link is followed, as by every writer (kdsim/files.py): the file it names is replaced
    assert run(session, f".report {link}").startswith("Report written to")
    assert link.is_symlink() and real.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = tmp_path / "no" / "such" / "dir.html"
    assert run(session, f".report {missing}") == (
        f"Unable to write report '{missing}': No such file or directory\n")
    assert run(session, ".report") == "Usage: .report FileName.html\n"
    assert run(session, '.report ""') == "Usage: .report FileName.html\n"
    quoted = tmp_path / "with space.html"
    assert run(session, f'.report "{quoted}"').startswith(f"Report written to {quoted} (")


# -- in a browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fragmented(tmp_path_factory) -> tuple[Session, Path]:
    """The first seed case at a tenth of its size, and its report."""
    session = Session(boot(seed=0, scenario="fragmentation", scale=0.1).target())
    path = tmp_path_factory.mktemp("report") / "fragmentation.html"
    assert run(session, f".report {path}").startswith("Report written to")
    return session, path


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    assert CHROMIUM is not None
    chromium = Chromium(CHROMIUM)
    try:
        yield chromium
    finally:
        chromium.close()


def _cells(browser: Chromium, pool: str) -> int:
    return browser.evaluate(
        f"document.querySelectorAll('.pool[data-pool={pool}] .grid .cell').length")


def _shown(browser: Chromium) -> str:
    """The clicked page's text, once the page's script has shown one (it opens the embedded
    texts asynchronously)."""
    for _ in range(250):
        text = browser.evaluate("document.getElementById('blocks').textContent")
        if text.startswith("Pool page"):
            return text
        browser.evaluate("new Promise(done => setTimeout(done, 20))")
    return text


@needs_browser
def test_the_report_opens_without_errors_and_has_a_cell_per_page(fragmented, browser) -> None:
    session, path = fragmented
    browser.open(path.as_uri())
    assert browser.errors() == []
    vm = read_vm(session.target)
    assert _cells(browser, "NonPaged") == vm.nonpaged_usage
    assert _cells(browser, "Paged") == vm.paged_usage
    figures = browser.evaluate(
        "Array.from(document.querySelectorAll('.pool[data-pool=NonPaged] td'))"
        ".map(td => td.textContent)")
    poolmap = " ".join(run(session, "!poolmap NonPaged").split())
    pinned = int(re.search(r"pinned: (\d+) pages", poolmap)[1])
    assert figures[0] == str(vm.nonpaged_usage) and figures[6] == str(pinned)


@needs_browser
def test_a_page_named_in_the_address_shows_the_rows_of_pool(fragmented, browser) -> None:
    session, path = fragmented
    browser.open(path.as_uri())
    first_pinned = browser.evaluate("document.querySelector('.grid .cell.pinned').dataset.a")
    browser.open(f"{path.as_uri()}#page={first_pinned}")
    assert _shown(browser) == run(session, f"!pool {first_pinned}")
    assert browser.evaluate("document.querySelector('.cell.selected').dataset.a") == first_pinned
    assert browser.errors() == []


@needs_browser
def test_clicking_a_page_shows_its_blocks_and_the_filter_marks_a_tag(fragmented, browser,
                                                                       tmp_path) -> None:
    session, path = fragmented
    browser.open(path.as_uri())
    box = browser.evaluate(
        "(() => { const c = document.querySelectorAll('.pool[data-pool=NonPaged] .cell')[900];"
        " c.scrollIntoView({block: 'center'}); const r = c.getBoundingClientRect();"
        " return [c.dataset.a, r.x + r.width / 2, r.y + r.height / 2]; })()")
    address, x, y = box
    browser.click(x, y)
    assert _shown(browser) == run(session, f"!pool {address}")
    browser.evaluate("(() => { const f = document.getElementById('filter'); f.value = 'MmCm';"
                     " f.dispatchEvent(new Event('input')); })()")
    hits = browser.evaluate("document.querySelectorAll('.pool[data-pool=NonPaged] .cell.hit')"
                            ".length")
    tagged = " ".join(run(session, "!poolmap NonPaged MmCm").split())
    assert hits == int(re.search(r"tag MmCm: \d+ bytes in use on (\d+) pages", tagged)[1])
    browser.evaluate("window.scrollTo(0, 0)")
    shot = browser.screenshot(tmp_path / "fragmentation-report.png")
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot of the fragmentation report: {shot}")
    assert browser.errors() == []


def test_the_report_charts_the_sessions_pooldiff_snapshots(tmp_path: Path) -> None:
    """`.report` draws the top tags over the session's snapshots: the one taken when the
    session opened and the one after `g`."""
    session = Session(boot("x86", 3, scale=0.1).target())
    run(session, "g 0n2000")
    path = tmp_path / "pool.html"
    assert run(session, f".report {path}").startswith("Report written to")
    text = path.read_text(encoding="utf-8")
    assert "<polyline" in text and "No !pooldiff snapshots" not in text
    ticks = re.findall(r'text-anchor="middle">([^<]*)</text>', text)
    assert ticks == ["#0", "#1"]
