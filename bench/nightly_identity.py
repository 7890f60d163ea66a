"""Whether two checkouts publish the same night: every table of the snapshot and every exported mart.

Usage: .venv/bin/python bench/nightly_identity.py HOME NIGHT BEFORE_DIR AFTER_DIR [--before-home DIR]

As bench/nightly_ab.py (whose run it uses; --before-home as there): each checkout runs flows.nightly
for NIGHT on its own copy of the home, in a fresh process. Then, for every table of the published
snapshot's core, marts and dq schemas and every mart read through the export's views file: the row
count and the sum of a hash of each whole row (order-free), side by side. Prints the tables that
differ; exits 1 if any does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nightly_ab import run_once, two_checkouts  # noqa: E402

SCHEMAS = ("core", "marts")


def fingerprints(home: Path) -> dict[str, tuple]:
    out = {}
    snap = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        tables = snap.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name IN ? ORDER BY 1", [list(SCHEMAS)]
        ).fetchall()
        for (t,) in tables:
            cols = ", ".join(f'"{c[0]}"' for c in snap.execute(f"SELECT * FROM {t} LIMIT 0").description)
            out[f"snapshot {t}"] = snap.execute(f"SELECT count(*), sum(hash({cols})::HUGEINT) FROM {t}").fetchone()
    finally:
        snap.close()
    views = duckdb.connect(str(home / "exports" / "smallcaps_views.duckdb"), read_only=True)
    try:
        for (v,) in views.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'marts' ORDER BY 1").fetchall():
            cols = ", ".join(f'"{c[0]}"' for c in views.execute(f"SELECT * FROM marts.{v} LIMIT 0").description)
            out[f"export marts.{v}"] = views.execute(f"SELECT count(*), sum(hash({cols})::HUGEINT) FROM marts.{v}").fetchone()
    finally:
        views.close()
    return out


def main() -> None:
    args = two_checkouts(__doc__).parse_args()
    got = {}
    for name, checkout, home in (("before", args.before, args.before_home or args.home), ("after", args.after, args.home)):
        keep = Path(tempfile.mkdtemp(prefix=f"nightly-identity-{name}-"))
        try:
            wall, _ = run_once(checkout.resolve(), home, args.night, keep=keep)
            got[name] = fingerprints(keep / "home")
            print(f"{name}: nightly {wall:.1f} s, {len(got[name])} tables fingerprinted", flush=True)
        finally:
            shutil.rmtree(keep, ignore_errors=True)
    names = sorted(set(got["before"]) | set(got["after"]))
    differ = [n for n in names if got["before"].get(n) != got["after"].get(n)]
    for n in names:
        b, a = got["before"].get(n), got["after"].get(n)
        print(f"  {'SAME ' if a == b else 'DIFF '} {n}: rows {b[0] if b else '-'} / {a[0] if a else '-'}")
    print(f"{len(names) - len(differ)} of {len(names)} the same" + (f"; differ: {', '.join(differ)}" if differ else ""))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
