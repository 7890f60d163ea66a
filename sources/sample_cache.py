"""The sample market kept in the data home between runs (`_Cache`): its files, keys and locks."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import fields
from functools import lru_cache
from datetime import date
from pathlib import Path
from typing import Iterator

import numpy as np

from ground import calendar
from ground.crashpoints import crashpoint
from sources.sample_companies import (
    N_INDEX_NOISE,
    QUARTER_FIELDS,
    RING,
    UNIVERSES,
    _Companies,
    _Quarters,
    _companies,
    _n_quarters,
    _quarters,
    _symbol,
)
from sources.sample_blocks import (
    DIVIDEND_DTYPE,
    _Block,
    _CacheDamaged,
    _append,
    _block_sessions,
    _load_npy,
    _remove,
    _remove_orphans,
    _write_block,
)
from sources.sample_market import _Carry, _Epoch, _Market

log = logging.getLogger("sources.sample")  # the logger of the sample source, whichever of its modules logs

# The market kept in the data home between runs -------------------------------------------------------

CACHE_FORMAT = 2  # the layout of the cache's files: part of the key, so a new layout starts afresh
LOAD_ATTEMPTS = 5  # a state replaced by a writer while it was read is read again, this many times
# The files of the sample source, one module before they were split: all of them make the key.
CODE_MODULES = ("sample.py", "sample_companies.py", "sample_blocks.py", "sample_market.py", "sample_cache.py")


@lru_cache(maxsize=1)
def _code_version() -> str:
    """What the simulated values depend on besides seed, start and size: the code of the sample's
    modules (any edit, even to a comment, starts a new cache: safer than a version number someone
    must remember to bump), numpy's generators (their streams may change between numpy versions)
    and the cache's file layout. The NYSE calendar is checked separately, session by session."""
    digest = hashlib.sha256()
    for module in CODE_MODULES:
        digest.update((Path(__file__).parent / module).read_bytes())
    digest.update(f"numpy {np.__version__}; cache format {CACHE_FORMAT}".encode())
    return digest.hexdigest()[:12]


def _cache_key(seed: int, start: date, companies: int) -> str:
    return f"market-{seed}-{start:%Y%m%d}-{companies}-{_code_version()}"


def _sessions_digest(session64: np.ndarray) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(session64, dtype="datetime64[D]").tobytes()).digest(), np.uint8)


class _Cache:
    """The simulated market of one key (seed, start, companies, code version) in `root` (the data
    home's cache/sample), so that a run continues from where the last one stopped instead of
    simulating the history again.

    root/market-KEY/state-T.npz                the stream after session T-1 (the carry, the index
                                               factors and levels, the member lists): what the next
                                               session needs, and what reading the first T needs
    root/market-KEY/blocks/T0-T1/FIELD.npy     bars and dividends of sessions [T0, T1) (company-major),
                                               a block every B sessions, written once when complete
    root/market-KEY/tail-T0/FIELD.bin          the sessions since the last complete block, one row
                                               each (session-major, no header): a night appends its row
    root/market-KEY/quarters-Q/FIELD.npy       the first Q quarters of fundamentals
    root/market-KEY/companies.npz              the companies
    root/market-KEY.lock                       held shared by every source using the key
    root/market-KEY.write.lock                 held by the one process writing to the key

    Files are written under a temporary name and renamed into place once complete, except the
    tail, which grows by appending; a state is written only after everything it names, and names
    how many rows (and dividends) of the tail are its own. So a killed writer leaves the last state
    and what it names as they were, plus leftovers the next writer removes (or, for the tail, cuts
    off before appending). Nothing a state names ever changes; a writer removes what the newest
    state does not need: older states, the tail of a block now complete, fewer quarters (a reader
    that loaded them keeps the tail and the quarters open, so they stay readable for it). What a
    load reads is checked (shapes and sizes, sessions against the calendar, every named file
    present); anything wrong removes the key's folder, with a log line, and the market is
    simulated again. Writing a key removes the other keys of `root` that no source is using."""

    def __init__(self, root: Path, seed: int, start: date, companies: int) -> None:
        self.root = Path(root)
        self.seed, self.start, self.n = seed, start, companies
        self.key = _cache_key(seed, start, companies)
        self.folder = self.root / self.key
        self.block_sessions = _block_sessions(companies)
        self._user_fd: int | None = None
        self._write_fd: int | None = None
        self._write_depth = 0

    # locks ----------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Hold the key's lock shared for as long as this cache object lives: a writer of another
        key removes this one only when it can take that lock exclusively, i.e. nobody uses it."""
        if self._user_fd is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{self.key}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the key was removed while we waited for its lock: take the new file's
        self._user_fd = fd
        weakref.finalize(self, os.close, fd)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The key's write lock (re-entrant within this object; callers serialise their threads)."""
        self.attach()
        if self._write_depth == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / f"{self.key}.write.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._write_fd = fd
        self._write_depth += 1
        try:
            yield
        finally:
            self._write_depth -= 1
            if self._write_depth == 0:
                os.close(self._write_fd)
                self._write_fd = None

    # reading --------------------------------------------------------------------------------------

    def states(self) -> list[int]:
        """Session counts of the states in place, ascending."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(name[6:-4]) for name in names if re.fullmatch(r"state-\d{6}\.npz", name))

    def load(self, co: _Companies) -> _Market | None:
        """The longest market in the cache, checked; None when there is none, or when what is
        there is damaged (then it is removed, with a log line)."""
        self.attach()
        for _ in range(LOAD_ATTEMPTS):
            states = self.states()
            if not states:
                return None
            try:
                return self._read(co, states[-1])
            except _CacheDamaged as exc:
                with self.writing():
                    if self.states()[-1:] == states[-1:]:  # still the newest: damaged, not replaced
                        self.discard(str(exc))
                        return None
        raise RuntimeError(
            f"sample market cache {self.folder}: its state changed {LOAD_ATTEMPTS} times while it was read; "
            "is another process rebuilding it in a loop? Stop it, or remove the folder"
        )

    def _read(self, co: _Companies, T: int) -> _Market:
        path = self.folder / f"state-{T:06d}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                st = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise _CacheDamaged(f"{path}: {exc}") from exc
        n, R = self.n, RING
        shapes = {
            "format": (1,), "companies": (1,), "block_sessions": (1,), "sessions": (1,), "sessions_sha256": (32,),
            "level": (3,), "trend": (3,), "price": (n,), "c_prev": (n,), "ring": (R, n), "growth": (n,),
            "rus": (n,), "sp": (n,), "delist_idx": (n,), "g": (T,), "fac": (T, N_INDEX_NOISE),
            "level_rut": (T,), "level_sp600": (T,), "volume_rut": (T,), "volume_sp600": (T,), "tail_dividends": (1,),
        }
        wrong = [k for k, shape in shapes.items() if k not in st or st[k].shape != shape]
        wrong += [k for k in ("epoch_t", "epoch_counts", "epoch_members") if k not in st]
        if wrong:
            raise _CacheDamaged(f"{path}: missing or misshapen {', '.join(wrong)}")
        expected = {"format": CACHE_FORMAT, "companies": n, "block_sessions": self.block_sessions, "sessions": T}
        for k, want in expected.items():
            if int(st[k][0]) != want:
                raise _CacheDamaged(f"{path}: {k} is {int(st[k][0])}, expected {want}")
        sessions = calendar.sessions(self.start, date.max)[:T]
        session64 = np.array(sessions, dtype="datetime64[D]")
        if len(sessions) < T or not np.array_equal(_sessions_digest(session64), st["sessions_sha256"]):
            raise _CacheDamaged(f"{path}: the NYSE calendar's sessions since {self.start} are not those it was simulated on")
        e_t, counts, members = st["epoch_t"], st["epoch_counts"], st["epoch_members"]
        E = len(e_t)
        if (E == 0 or e_t[0] != 0 or np.any(np.diff(e_t) <= 0) or e_t[-1] >= T or counts.shape != (E, len(UNIVERSES))
                or counts.sum() != len(members) or (len(members) and not 0 <= members.min() <= members.max() < n)):
            raise _CacheDamaged(f"{path}: its member lists are inconsistent")
        bounds = np.concatenate([[0], np.cumsum(counts.ravel())])
        epochs = tuple(
            _Epoch(int(t), {u: members[bounds[k * len(UNIVERSES) + j] : bounds[k * len(UNIVERSES) + j + 1]] for j, u in enumerate(UNIVERSES)})
            for k, t in enumerate(e_t)
        )
        blocks_dir = self.folder / "blocks"
        try:
            present = set(os.listdir(blocks_dir))
        except FileNotFoundError:
            present = set()
        spans = self._spans(T)
        missing = [f"{t0:06d}-{t1:06d}" for t0, t1 in spans if f"{t0:06d}-{t1:06d}" not in present]
        if missing:
            raise _CacheDamaged(f"{path}: names block(s) {', '.join(missing[:3])} that {blocks_dir} does not hold")
        blocks = [_Block(t0, t1, n, None, blocks_dir / f"{t0:06d}-{t1:06d}", None) for t0, t1 in spans]
        tail_t0 = spans[-1][1] if spans else 0
        if tail_t0 < T:
            tail = _Block(tail_t0, T, n, None, self.folder / f"tail-{tail_t0:06d}", None, is_tail=True,
                          tail_dividends=int(st["tail_dividends"][0]))
            blocks.append(tail)
        blocks[-1].pin()
        carry = _Carry(
            level=st["level"], trend=st["trend"], price=st["price"], c_prev=st["c_prev"], ring=st["ring"],
            growth=st["growth"], rus=st["rus"].astype(bool), sp=st["sp"].astype(bool), delist_idx=st["delist_idx"],
        )
        return _Market(
            sessions=sessions, session64=session64,
            first_idx=np.searchsorted(session64, co.listing_date, side="left"), delist_idx=carry.delist_idx.copy(),
            epochs=epochs, blocks=tuple(blocks), quarters=self.quarters(co, _n_quarters(self.start, sessions[-1])),
            g=st["g"], fac=st["fac"], levels={"^RUT": st["level_rut"], "^SP600": st["level_sp600"]},
            volumes={"^RUT": st["volume_rut"], "^SP600": st["volume_sp600"]}, carry=carry,
        )

    def companies(self) -> _Companies:
        """The companies of the key: read from the cache (making 10,000 invented names costs 0.2 s
        of a night), or made and written there."""
        self.attach()
        path = self.folder / "companies.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                got = {k: z[k] for k in z.files}
            names = [f.name for f in fields(_Companies)]
            if sorted(got) != sorted(names) or any(v.shape != (self.n,) for v in got.values()) or got["symbol"][-1] != _symbol(self.n - 1, self.n):
                raise ValueError(f"not the {self.n:,} companies of this market")
            return _Companies(**got)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("sample market cache: %s: %s; making the companies again", path, exc)
            with self.writing():
                _remove(path)
        co = _companies(self.seed, self.start, self.n)
        with self.writing():
            self._write_companies(co)
        return co

    def _write_companies(self, co: _Companies) -> None:
        path = self.folder / "companies.npz"
        if path.exists():
            return
        staged = self.folder / f".tmp-{os.getpid()}-companies.npz"
        with open(staged, "wb") as out:
            np.savez(out, **{f.name: getattr(co, f.name) for f in fields(_Companies)})
        self._place(staged, path)

    def _spans(self, T: int) -> list[tuple[int, int]]:
        """The complete blocks of a market of T sessions (the sessions after them are the tail)."""
        B = self.block_sessions
        return [(t0, t0 + B) for t0 in range(0, T - T % B, B)]

    def quarters(self, co: _Companies, needed: int) -> _Quarters:
        """At least `needed` quarters: the most the cache holds (memory-mapped, opened now), and
        any more computed from them and written."""
        stored = None
        for Q in self._quarter_counts()[::-1]:
            folder = self.folder / f"quarters-{Q:04d}"
            try:
                stored = self._read_quarters(folder, Q)
                break
            except _CacheDamaged as exc:
                with self.writing():
                    # A writer that stored more quarters removes the fewer ones: listed here just
                    # before it did, they are gone, not damaged. Under the write lock nobody
                    # removes any, so the second listing is the one to read.
                    if self._quarter_counts()[-1:] != [Q]:
                        return self.quarters(co, needed)
                    log.warning("sample market cache: %s; computing those quarters again", exc)
                    _remove(folder)
        got = _quarters(self.seed, self.start, co, needed, stored)
        if got is not stored:
            with self.writing():
                self._write_quarters(got)
        return got

    def _quarter_counts(self) -> list[int]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(name[9:]) for name in names if re.fullmatch(r"quarters-\d{4}", name))

    def _read_quarters(self, folder: Path, Q: int) -> _Quarters:
        n = self.n
        day, f8 = np.dtype("datetime64[D]"), np.dtype(np.float64)
        spec = {
            "period_end": ((Q,), day), "report_date": ((Q, n), day), "net_income_common": ((Q, n), f8),
            "exists": ((Q, n), np.dtype(bool)), "net_income": ((Q, n), f8), "eps": ((Q, n), f8), "revenue": ((Q, n), f8),
        }
        got = {f: _load_npy(folder / f"{f}.npy", shape, dtype, mmap=True) for f, (shape, dtype) in spec.items()}
        return _Quarters(**got, level=np.array(_load_npy(folder / "level.npy", (n,), f8, mmap=False)))

    # writing (under the write lock) -----------------------------------------------------------------

    def _staging(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=self.folder))

    def _place(self, staged: Path, final: Path) -> None:
        """Rename a complete staged file or folder into place. Under the write lock nobody else
        writes; something already there is a leftover of a run that stopped before recording its
        state (tidy() removes those before a market grows), replaced: only what this run wrote
        and checked is named by its state."""
        _remove(final)
        os.rename(staged, final)

    def append_tail(self, t0: int, arrays: dict[str, np.ndarray], dividends: np.ndarray, reopened: _Block | None) -> _Block:
        """The tail from session t0: the rows of `reopened` (the tail as the state the market
        continues names it, or None for a new tail) and `arrays` (sessions x companies) after
        them, with `dividends` after its dividends."""
        assert self._write_depth > 0, "the tail grows under the cache's write lock"
        folder = self.folder / f"tail-{t0:06d}"
        if reopened is None:
            _remove(folder)  # a tail this name had before the state it continues (tidy() removes those first)
            folder.mkdir()
            rows, divs = 0, 0
        else:
            assert reopened.is_tail and reopened.folder == folder and reopened.t0 == t0, (reopened.folder, folder)
            rows, divs = reopened.t1 - reopened.t0, reopened.tail_dividends
        n = next(iter(arrays.values())).shape[1]
        for k, (field, values) in enumerate(arrays.items()):
            _append(folder / f"{field}.bin", rows * n * values.itemsize, values)
            if k == 0:
                crashpoint("sample.cache.tail")
        _append(folder / "dividends.bin", divs * DIVIDEND_DTYPE.itemsize, dividends)
        added = len(next(iter(arrays.values())))
        return _Block(t0, t0 + rows + added, n, None, folder, None, is_tail=True, tail_dividends=divs + len(dividends))

    def write_block(self, t0: int, t1: int, arrays: dict[str, np.ndarray], dividends: np.ndarray) -> Path:
        assert self._write_depth > 0, "blocks are written under the cache's write lock"
        blocks_dir = self.folder / "blocks"
        blocks_dir.mkdir(exist_ok=True)
        staged = self._staging()
        _write_block(staged, arrays, dividends)
        crashpoint("sample.cache.block")
        final = blocks_dir / f"{t0:06d}-{t1:06d}"
        self._place(staged, final)
        return final

    def _write_quarters(self, quarters: _Quarters) -> None:
        Q = len(quarters)
        if self._quarter_counts()[-1:] >= [Q]:
            return
        staged = self._staging()
        for f in (*QUARTER_FIELDS, "level"):
            np.save(staged / f"{f}.npy", np.asarray(getattr(quarters, f)))
        self._place(staged, self.folder / f"quarters-{Q:04d}")

    def commit(self, market: _Market, co: _Companies) -> None:
        """Record `market`, whose blocks are written: the companies and quarters, then the state
        naming the blocks; then remove what that state does not need, and the other keys nobody uses."""
        assert self._write_depth > 0, "a state is recorded under the cache's write lock"
        T, c = len(market.sessions), market.carry
        self._write_companies(co)
        self._write_quarters(market.quarters)
        counts = np.array([[len(e.members[u]) for u in UNIVERSES] for e in market.epochs], np.int64)
        state = {
            "format": [CACHE_FORMAT], "companies": [self.n], "block_sessions": [self.block_sessions], "sessions": [T],
            "sessions_sha256": _sessions_digest(market.session64),
            "level": c.level, "trend": c.trend, "price": c.price, "c_prev": c.c_prev, "ring": c.ring,
            "growth": c.growth, "rus": c.rus, "sp": c.sp, "delist_idx": c.delist_idx,
            "g": market.g, "fac": market.fac, "level_rut": market.levels["^RUT"], "level_sp600": market.levels["^SP600"],
            "volume_rut": market.volumes["^RUT"], "volume_sp600": market.volumes["^SP600"],
            "epoch_t": np.array([e.t for e in market.epochs], np.int64), "epoch_counts": counts,
            "tail_dividends": [market.blocks[-1].tail_dividends if market.blocks[-1].is_tail else 0],
            "epoch_members": np.concatenate([e.members[u] for e in market.epochs for u in UNIVERSES]).astype(np.int64),
        }
        staged = self.folder / f".tmp-{os.getpid()}-state-{T:06d}.npz"
        with open(staged, "wb") as out:
            np.savez(out, **{k: np.asarray(v) for k, v in state.items()})
        crashpoint("sample.cache.state")
        self._place(staged, self.folder / f"state-{T:06d}.npz")
        crashpoint("sample.cache.tidy")
        self.tidy(T)
        self._remove_other_keys()

    def tidy(self, T: int | None) -> None:
        """Remove what the state of T sessions does not need (everything when None): other states,
        blocks and tails it does not name, all but the most quarters, staged files of stopped writers."""
        assert self._write_depth > 0, "the cache is tidied under its write lock"
        counts = self._quarter_counts()
        keep = {"blocks", "companies.npz"}
        if T:
            keep |= {f"state-{T:06d}.npz"} | ({f"quarters-{counts[-1]:04d}"} if counts else set())
            if T % self.block_sessions:
                keep.add(f"tail-{T - T % self.block_sessions:06d}")
        for path in self.folder.iterdir():
            if path.name not in keep:
                _remove(path)
        blocks = {f"{t0:06d}-{t1:06d}" for t0, t1 in self._spans(T)} if T else set()
        if (self.folder / "blocks").is_dir():
            for path in (self.folder / "blocks").iterdir():
                if path.name not in blocks:
                    _remove(path)

    def discard(self, why: str) -> None:
        """Remove this key's files (not its locks) after finding them damaged."""
        log.warning("sample market cache %s: %s; removing it and simulating the market again", self.folder, why)
        with self.writing():
            for path in self.folder.iterdir():
                _remove(path)

    def _remove_other_keys(self) -> None:
        """Other keys' folders and locks, where nobody holds the key's lock (a source of other
        settings on this home right now keeps its key), and scratch folders of dead processes."""
        names = {p.name for p in self.root.iterdir()}
        others = {n.removesuffix(".write.lock").removesuffix(".lock") for n in names if n.startswith("market-")} - {self.key}
        for key in sorted(others):
            lock = self.root / f"{key}.lock"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if (self.root / key).is_dir():
                    _remove(self.root / key)
                (self.root / f"{key}.write.lock").unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        _remove_orphans(self.root)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file()) if self.folder.is_dir() else 0
