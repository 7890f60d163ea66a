"""Publish time and snapshot size against warehouse size, on the sample market.

Usage: .venv/bin/python bench/publish_snapshot.py [WAREHOUSE]
Without an argument it backfills a fresh sample warehouse first (as bench/rebuild_marts.py does),
then publishes it three times into a scratch folder, as the nightly flow does (the registry's
tables with their keys and comments, in the storage version of SMALLCAPS_PUBLISH_STORAGE_VERSION),
and prints the median time and the sizes.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rebuild_marts import backfill_without_prefect  # noqa: E402

from ground.registry import DATASETS  # noqa: E402
from ground.settings import Settings  # noqa: E402
from warehouse.db import connect, table_names  # noqa: E402
from warehouse.publish import publish  # noqa: E402


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    if len(sys.argv) > 1:
        settings = Settings(home=Path(sys.argv[1]).parent)
    else:
        settings = Settings(home=Path(tempfile.mkdtemp(prefix="smallcaps-bench-")))
        t = time.perf_counter()
        backfill_without_prefect(settings)
        print(f"sample backfill without Prefect: {time.perf_counter() - t:.1f} s")
    con = connect(settings.warehouse_path)
    con.execute("CHECKPOINT")
    as_of = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    warehouse_bytes = settings.warehouse_path.stat().st_size
    rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in table_names(con)}
    scratch = Path(tempfile.mkdtemp(prefix="smallcaps-publish-"))
    runs = []
    for i in range(3):
        t = time.perf_counter()
        published = publish(
            con, scratch, as_of=as_of, load_id=f"bench{i}", source="sample", keep=1, declared=DATASETS,
            storage_version=settings.publish_storage_version,
        )
        runs.append(time.perf_counter() - t)
    snap = connect(published.path, read_only=True)
    copied = sum(rows[t] for t in table_names(snap) if t in rows)
    snap.close()
    total = sum(rows.values())
    print(f"warehouse {settings.warehouse_path}: {mb(warehouse_bytes)}, {total:,} rows in {len(rows)} tables")
    print(f"snapshot  {published.path} (storage version {settings.publish_storage_version}): {mb(published.bytes)}, {copied:,} rows "
          f"({published.bytes / warehouse_bytes:.0%} of the warehouse's bytes)")
    print(f"publish (copy, checkpoint, fsync, rename): median {statistics.median(runs):.2f} s of 3 runs "
          f"({', '.join(f'{r:.2f}' for r in runs)}); {published.bytes / 1e6 / statistics.median(runs):,.0f} MB/s")


if __name__ == "__main__":
    main()
