"""How `smallcaps sql` (and `status`/`dq --format json`) write values for scripts.

JSON: one array of objects, written row by row. NaN and +-Infinity (which JSON cannot carry) are
null; dates, times and timestamps ISO 8601; DECIMAL values are JSON numbers written with every
digit DuckDB returned (never through a float); BLOBs are base64 strings; UUIDs and intervals
strings; LIST/STRUCT/MAP nest as arrays and objects.

CSV: RFC 4180 with a header line. SQL NULL is an empty, unquoted field; an empty string is `""`
(a quoted empty field), so `a,,""` reads as ('a', NULL, ''). A field is quoted when it is an empty
string or holds a comma, a quote, a line break or leading/trailing blanks. Booleans are `true` and
`false`, floats in Python's shortest round-trip form (`nan`, `inf`, `-inf` as DuckDB reads them
back), BLOBs base64, nested values as their JSON.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import IO


def _json_float(v: float) -> str:
    return "null" if v != v or v in (math.inf, -math.inf) else repr(v)


def _json_str(v: str) -> str:
    return json.dumps(v, ensure_ascii=False)


def json_value(v: object) -> str:
    """One value as JSON text (exact for DECIMAL, null for NaN and infinities)."""
    fast = _JSON_FAST.get(type(v))
    if fast is not None:
        return fast(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, Decimal):
        return "null" if not v.is_finite() else format(v, "f")
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, (datetime, date, time)):
        return json.dumps(v.isoformat())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return json.dumps(base64.b64encode(bytes(v)).decode("ascii"))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {json_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(json_value(x) for x in v) + "]"
    # UUID, timedelta (INTERVAL) and whatever DuckDB adds later: their text.
    return json.dumps(str(v), ensure_ascii=False)


# The types most rows are made of, looked up once per value instead of a chain of isinstance.
_JSON_FAST = {int: int.__repr__, float: _json_float, str: _json_str, type(None): lambda v: "null"}


def write_json(out: IO[str], columns: Sequence[str], batches: Iterable[Sequence[tuple]]) -> int:
    keys = [json.dumps(c, ensure_ascii=False) + ": " for c in columns]
    out.write("[")
    n = 0
    for batch in batches:
        for row in batch:
            out.write(("\n" if n == 0 else ",\n") + " {" + ", ".join(k + json_value(v) for k, v in zip(keys, row)) + "}")
            n += 1
    out.write("\n]\n" if n else "]\n")
    return n


_NEEDS_QUOTES = re.compile(r'[,"\r\n]|^\s|\s$')


def _csv_str(text: str) -> str:
    if not text or _NEEDS_QUOTES.search(text) is not None:
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_field(v: object) -> str:
    fast = _CSV_FAST.get(type(v))
    if fast is not None:
        return fast(v)
    if v is None:
        return ""
    if isinstance(v, str):
        text = v
    elif isinstance(v, bool):
        return "true" if v else "false"
    elif isinstance(v, (int, float)):
        return repr(v)
    elif isinstance(v, Decimal):
        return format(v, "f")
    elif isinstance(v, (datetime, date, time)):
        return v.isoformat()
    elif isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    elif isinstance(v, (dict, list, tuple)):
        text = json_value(v)
    else:  # UUID, timedelta (INTERVAL) and whatever DuckDB adds later: their text
        text = str(v)
    return _csv_str(text)


_CSV_FAST = {int: int.__repr__, float: float.__repr__, str: _csv_str, type(None): lambda v: ""}


def write_csv(out: IO[str], columns: Sequence[str], batches: Iterable[Sequence[tuple]]) -> int:
    out.write(",".join(csv_field(c) for c in columns) + "\r\n")
    n = 0
    for batch in batches:
        out.write("".join(",".join(csv_field(v) for v in row) + "\r\n" for row in batch))
        n += len(batch)
    return n
