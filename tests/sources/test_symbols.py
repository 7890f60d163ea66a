"""Holdings ticker -> Yahoo symbol mapping and the override file (meta.symbols rows: tests/test_pipeline.py)."""

from __future__ import annotations

import pytest

from sources.symbols import KNOWN_CLASS_SHARES, load_overrides, map_tickers, to_yahoo


@pytest.mark.parametrize(
    "ticker, symbol, rule",
    [
        ("AAPL", "AAPL", "identity"),
        ("be", "BE", "identity"),  # case and blanks normalised
        (" IONQ ", "IONQ", "identity"),
        ("BRK.B", "BRK-B", "dot_to_dash"),
        ("MOG.A", "MOG-A", "dot_to_dash"),  # IJR 2017 files
        ("BF/B", "BF-B", "dot_to_dash"),
        ("MOGA", "MOG-A", "share_class"),  # IWM 2025 and IJR from 2017-04 on
        ("BFB", "BF-B", "share_class"),
        ("GEFB", "GEF-B", "share_class"),
        ("CRDA", "CRD-A", "share_class"),
        # Nasdaq class shares: the ticker already is the Yahoo symbol.
        ("BELFA", "BELFA", "identity"),
        ("RUSHB", "RUSHB", "identity"),
        # Ends in A but is no class share.
        ("ZETA", "ZETA", "identity"),
        ("VERA", "VERA", "identity"),
    ],
)
def test_rules(ticker, symbol, rule):
    assert to_yahoo(ticker) == (symbol, rule)


def test_override_wins_over_every_rule():
    overrides = {"MOGA": "MOG-X", "BRK.B": "BRKB", "XYZ": "XYZ-W"}
    assert to_yahoo("MOGA", overrides) == ("MOG-X", "override")
    assert to_yahoo("brk.b", overrides) == ("BRKB", "override")
    assert to_yahoo("XYZ", overrides) == ("XYZ-W", "override")
    assert to_yahoo("BFB", overrides) == ("BF-B", "share_class")


def test_known_class_shares_are_dashed_and_root_prefixed():
    for ticker, symbol in KNOWN_CLASS_SHARES.items():
        root, _, cls = symbol.partition("-")
        assert ticker == root + cls and len(cls) == 1


def test_empty_ticker_is_an_error():
    with pytest.raises(ValueError, match="empty ticker"):
        to_yahoo("  ")


def test_load_overrides(tmp_path):
    p = tmp_path / "symbol_overrides.csv"
    p.write_text("# fixes\nticker,symbol\nmoga , mog-a\n\nP5N994,PCI\n", encoding="utf-8")
    assert load_overrides(p) == {"MOGA": "MOG-A", "P5N994": "PCI"}
    assert load_overrides(None) == {}
    assert load_overrides(tmp_path / "absent.csv") == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("tick,sym\nA,B\n", r"line 1: expected the header 'ticker,symbol'"),
        ("ticker,symbol\nA,B\nC\n", r"line 3: expected 'TICKER,SYMBOL'"),
        ("ticker,symbol\nA,B\nA,C\n", r"line 3: A mapped twice"),
        ("ticker,symbol\nA,B C\n", r"line 2: 'B C' does not look like a Yahoo symbol"),
        ("", r"empty override file"),
    ],
)
def test_bad_override_file_names_the_line(tmp_path, text, message):
    p = tmp_path / "o.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_overrides(p)


def test_map_tickers_one_row_per_distinct_ticker():
    df = map_tickers(["MOGA", "AAPL", "MOGA", "BRK.B"])
    assert df.to_dicts() == [
        {"ticker": "MOGA", "symbol": "MOG-A", "rule": "share_class"},
        {"ticker": "AAPL", "symbol": "AAPL", "rule": "identity"},
        {"ticker": "BRK.B", "symbol": "BRK-B", "rule": "dot_to_dash"},
    ]
