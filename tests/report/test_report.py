"""The nightly report on a real published snapshot: self-contained, every chart there and valid,
each chart with its night and its source, synthetic data marked as such (and only then), errors
that say what to do."""

from __future__ import annotations

import base64
import html as html_lib
import re
import shutil
import struct
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from smallcaps.cli import app
from report import SYNTHETIC_NOTE, ReportError, write_report
from ground.settings import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Attributes through which a page can fetch something.
FETCHING_ATTRS = {"src", "href", "srcset", "poster", "action", "data", "background", "xlink:href", "formaction", "ping"}


class Page(HTMLParser):
    """Tags with their attributes, the style sheet, and each figure's caption text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self.figures: dict[str, dict] = {}
        self._in_style = False
        self._figure: str | None = None
        self._caption: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "style" in a:
            self.styles.append(a["style"] or "")
        if tag == "style":
            self._in_style = True
        elif tag == "figure":
            self._figure = a.get("data-chart")
            self.figures[self._figure] = {"attrs": a, "caption": "", "img": None}
        elif tag == "img" and self._figure:
            self.figures[self._figure]["img"] = a
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        elif tag == "figcaption" and self._figure is not None:
            self.figures[self._figure]["caption"] = " ".join(self._caption or [])
            self._caption = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
        if self._caption is not None:
            self._caption.append(data)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def page(report) -> Page:
    return Page(report.html_path.read_text(encoding="utf-8"))


def headlines_of(home: Path, night: date) -> list[str]:
    con = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT sentence FROM marts.headlines WHERE as_of_date = ? ORDER BY rank", [night]
        ).fetchall()]
    finally:
        con.close()


@pytest.mark.slow
def test_the_report_is_of_the_snapshots_night_and_goes_where_documented(report, snapshot_home, window):
    assert report.as_of == window[1]
    assert report.html_path == snapshot_home / "report" / window[1].isoformat() / "index.html"
    assert report.html_path.is_file()
    latest = snapshot_home / "report" / "latest"
    assert latest.is_symlink() and latest.resolve() == report.html_path.parent.resolve()
    assert report.source == "sample" and report.is_synthetic
    assert report.dq_status == "ok"
    assert 0 < report.seconds < 120


@pytest.mark.slow
def test_the_page_fetches_nothing(report, page):
    text = report.html_path.read_text(encoding="utf-8")
    # Nothing anywhere in the page points at the network, not even as text.
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in FETCHING_ATTRS:
                assert value and value.startswith(("data:image/png;base64,", "#")), (tag, name, (value or "")[:80])
        if tag == "meta":
            assert attrs.get("http-equiv") is None, attrs
    css = "\n".join(page.styles)
    assert css.strip(), "the page has its styles inline"
    assert "@import" not in css and "url(" not in css and "@font-face" not in css


@pytest.mark.slow
def test_every_chart_is_embedded_and_saved_as_a_valid_png(report, page, expected_charts):
    assert list(page.figures) == list(expected_charts)
    assert [p.name for p in report.png_paths] == [f"{c}.png" for c in expected_charts]
    for chart, path in zip(expected_charts, report.png_paths):
        assert path.parent == report.html_path.parent / "charts"
        img = page.figures[chart]["img"]
        assert img["id"] == f"chart-{chart}" and img["alt"].strip()
        embedded = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"), validate=True)
        on_disk = path.read_bytes()
        assert embedded == on_disk, f"{chart}: the page and charts/{path.name} differ"
        width, height = png_size(on_disk)
        assert (width, height) == (int(img["width"]), int(img["height"]))
        assert width >= 800 and height >= 300
        with Image.open(path) as im:
            im.verify()


@pytest.mark.slow
def test_each_chart_carries_its_night_and_its_source(report, page, expected_charts):
    night = report.as_of.isoformat()
    for chart, path in zip(expected_charts, report.png_paths):
        fig = page.figures[chart]
        assert fig["attrs"]["data-as-of"] == night
        assert fig["attrs"]["data-source"] == "sample"
        caption = fig["caption"]
        assert f"As of {night}" in caption and "source: marts." in caption, caption
        # The image itself says so too (drawn on it, and in its PNG text).
        with Image.open(path) as im:
            info = im.info
        assert f"as of {night}" in info["Title"]
        assert f"As of {night}" in info["Description"] and "marts." in info["Source"]


@pytest.mark.slow
def test_sample_data_is_marked_synthetic_on_the_page_and_every_chart(report, page, expected_charts):
    text = report.html_path.read_text(encoding="utf-8")
    assert 'id="synthetic-banner"' in text
    assert "Synthetic sample data, not market prices" in text
    for chart, path in zip(expected_charts, report.png_paths):
        assert SYNTHETIC_NOTE in page.figures[chart]["caption"]
        with Image.open(path) as im:
            assert SYNTHETIC_NOTE in im.info["Description"]
    assert "Synthetic sample data, not market prices" in report.markdown


@pytest.mark.slow
def test_headlines_are_the_marts_sentences_of_the_night(report, snapshot_home):
    sentences = headlines_of(snapshot_home, report.as_of)
    assert sentences, "the sample night has headlines"
    text = report.html_path.read_text(encoding="utf-8")
    items = re.findall(r'<ol class="headlines">(.*?)</ol>', text, re.S)[0]
    shown = [html_lib.unescape(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", items, re.S)]
    assert shown == sentences


@pytest.mark.slow
def test_markdown_links_the_page_and_holds_the_headline_table(report, snapshot_home):
    md = report.markdown
    assert f"]({report.html_path.resolve().as_uri()})" in md
    assert "| # | headline |" in md
    for rank, sentence in enumerate(headlines_of(snapshot_home, report.as_of), start=1):
        assert f"| {rank} | {sentence.replace('|', chr(92) + '|')} |" in md
    assert "Data quality: **ok**" in md


@pytest.mark.slow
def test_data_quality_section_names_the_load_and_its_checks(report, snapshot_home):
    text = report.html_path.read_text(encoding="utf-8")
    con = duckdb.connect(str(snapshot_home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        load_id, = con.execute("SELECT load_id FROM meta.snapshot").fetchone()
        checks, = con.execute("SELECT count(*) FROM dq.results WHERE load_id = ?", [load_id]).fetchone()
    finally:
        con.close()
    assert '<span class="status ok" id="dq-status">ok</span>' in text
    assert f"{checks:,} of {checks:,} expectations passed" in text and checks > 0
    assert load_id in text
    for table_id in ("dq-snapshot", "dq-freshness", "dq-results", "dq-loads"):
        assert f'id="{table_id}"' in text


@pytest.mark.slow
def test_cli_writes_an_earlier_night_without_moving_latest(snapshot_home, report, expected_charts):
    night = date(2025, 4, 8)
    result = CliRunner().invoke(app, ["report", "--as-of", night.isoformat(), "--home", str(snapshot_home)])
    assert result.exit_code == 0, result.output
    html_path = snapshot_home / "report" / night.isoformat() / "index.html"
    lines = result.output.splitlines()
    assert f"report: {html_path}" in lines
    for chart in expected_charts:
        assert f"chart: {html_path.parent / 'charts' / (chart + '.png')}" in lines
    page = Page(html_path.read_text(encoding="utf-8"))
    assert {f["attrs"]["data-as-of"] for f in page.figures.values()} == {night.isoformat()}
    text = html_path.read_text(encoding="utf-8")
    for sentence in headlines_of(snapshot_home, night):
        assert html_lib.escape(sentence) in text
    # `latest` still shows the newest night.
    assert (snapshot_home / "report" / "latest").resolve() == report.html_path.parent.resolve()


def test_no_snapshot_says_what_to_run(tmp_path):
    with pytest.raises(ReportError, match=r"run `smallcaps run` or `make demo` first"):
        write_report(Settings(home=tmp_path))
    assert not (tmp_path / "report").exists()
    result = CliRunner().invoke(app, ["report", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "make demo" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "night, why",
    [(date(2025, 4, 12), "it is not a session"), (date(2025, 5, 19), "outside that range"), (date(2024, 6, 3), "outside that range")],
)
def test_a_night_without_data_names_the_range_held(snapshot_home, window, night, why):
    start, end = window
    with pytest.raises(ReportError) as err:
        write_report(Settings(home=snapshot_home), night)
    message = str(err.value)
    assert f"no data for {night}" in message
    assert f"sessions {start} to {end}" in message and why in message
    assert not (snapshot_home / "report" / night.isoformat()).exists()


@pytest.mark.slow
def test_real_sources_are_not_marked_synthetic_and_the_private_warehouse_is_not_needed(snapshot_home, tmp_path, expected_charts):
    # A home that holds only a published snapshot (no private warehouse), its loads from `csv`.
    home = tmp_path / "home"
    (home / "published").mkdir(parents=True)
    snapshot = home / "published" / "smallcaps.duckdb"
    shutil.copyfile(snapshot_home / "published" / "smallcaps.duckdb", snapshot)
    con = duckdb.connect(str(snapshot))
    con.execute("UPDATE meta.loads SET source = 'csv'")
    con.execute("UPDATE meta.snapshot SET source = 'csv'")
    con.close()
    r = write_report(Settings(home=home))
    assert not (home / "warehouse.duckdb").exists()
    assert r.source == "csv" and not r.is_synthetic
    text = r.html_path.read_text(encoding="utf-8")
    assert "synthetic" not in text.lower()
    assert "data source: csv" in text
    assert "synthetic" not in r.markdown.lower()
    for path in r.png_paths:
        with Image.open(path) as im:
            assert "synthetic" not in im.info["Description"].lower()
            assert "data source: csv" in im.info["Description"]
    assert [p.name for p in r.png_paths] == [f"{c}.png" for c in expected_charts]


@pytest.mark.slow
@pytest.mark.parametrize("window_days", [365, 20])
def test_the_relative_strength_line_rebases_the_marts_level_to_the_window(snapshot_home, monkeypatch, window_days):
    """The line is relative_level over its level before the window: the lead's returns compounded
    over the window's rows over the lag's, as the report drew it when it compounded them itself. A
    20-day window starts inside the snapshot, so the base is a stored level, not 1."""
    from report import read
    from report.charts import _rebased

    monkeypatch.setattr(read, "WINDOW_DAYS", window_days)
    con = duckdb.connect(str(snapshot_home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        night = read._read_night(con, Settings(home=snapshot_home), None)
    finally:
        con.close()
    assert night.relative.height > 0
    compounded = night.relative.with_columns(
        rs=_rebased(pl.col("relative_level"), pl.col("base_level")),
        by_hand=((1 + pl.col("lead_ret")).cum_prod() / (1 + pl.col("lag_ret")).cum_prod()).over("lead_symbol", "lag_symbol") * 100,
    )
    assert ((compounded["rs"] - compounded["by_hand"]).abs() <= 1e-12 * compounded["by_hand"]).all()
    bases = compounded.group_by("lead_symbol", "lag_symbol").agg(pl.col("base_level").first())["base_level"]
    assert (bases == 1.0).all() if window_days == 365 else (bases != 1.0).all()


@pytest.mark.slow
def test_a_snapshot_without_relative_level_says_to_publish_again(snapshot_home, tmp_path):
    home = tmp_path / "home"
    (home / "published").mkdir(parents=True)
    snapshot = home / "published" / "smallcaps.duckdb"
    shutil.copyfile(snapshot_home / "published" / "smallcaps.duckdb", snapshot)
    con = duckdb.connect(str(snapshot))
    con.execute("ALTER TABLE marts.relative_performance DROP COLUMN relative_level")
    con.close()
    with pytest.raises(ReportError, match=r"predates marts.relative_performance.relative_level.*`smallcaps run`"):
        write_report(Settings(home=home))


@pytest.mark.slow
def test_sector_returns_since_an_anchor_are_the_marts_and_equal_the_daily_returns_compounded(snapshot_home):
    """The sector chart's since-anchor panels read marts.sector_performance: the daily sector
    returns after the night's anchor session compounded, as the report computed them itself before."""
    from report import read

    con = duckdb.connect(str(snapshot_home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        night = read._read_night(con, Settings(home=snapshot_home), None)
        history = con.sql("SELECT * FROM marts.sector_daily").pl()
    finally:
        con.close()
    anchors = night.cohort_perf.filter(pl.col("session_date") == night.as_of).select("universe", "anchor", "anchor_date").unique()
    assert anchors.height > 0
    compared = 0
    for universe, anchor, anchor_date in anchors.iter_rows():
        by_hand = (
            history.filter((pl.col("universe") == universe) & (pl.col("session_date") > anchor_date) & (pl.col("session_date") <= night.as_of))
            .group_by("sector")
            .agg(((1 + pl.col(c).fill_null(0)).product() - 1).alias(c) for c in ("return_equal_weight", "return_cap_weight"))
        )
        got = night.sector_perf.filter((pl.col("universe") == universe) & (pl.col("anchor") == anchor))
        assert set(got["sector"]) == set(night.sectors.filter(pl.col("universe") == universe)["sector"])
        both = got.join(by_hand, on="sector", suffix="_by_hand")
        assert both.height == got.height > 0
        for c in ("return_equal_weight", "return_cap_weight"):
            assert ((both[c] - both[f"{c}_by_hand"]).abs() <= 1e-12).all(), c
        assert (got["anchor_date"] == anchor_date).all()
        compared += got.height
    assert compared > 0
