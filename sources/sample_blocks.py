"""Where the sample market's bars go as they are simulated: time blocks held in memory up to a
budget, then in scratch files or the cache's files (sources/sample_cache.py writes those)."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import weakref
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sources.sample_companies import BAR_BYTES_PER_CELL, BAR_FIELDS, BLOCK_BYTES_MAX, BLOCK_SESSIONS, bar_dtype

if TYPE_CHECKING:  # only to name the cache in an annotation: sample_cache imports this module
    from sources.sample_cache import _Cache


# Storage of the bars: time blocks, in memory up to a budget, then in files --------------------------

# Dividends of a block's sessions: company, session index, USD per share (in session order).
DIVIDEND_DTYPE = np.dtype([("i", np.int64), ("t", np.int64), ("value", np.float64)])
NO_DIVIDENDS = np.zeros(0, DIVIDEND_DTYPE)


# A read of at most this many companies from a block file reads their rows directly
# (_Block._read_rows) instead of mapping the file.
FEW_ROWS = 64


@lru_cache(maxsize=64)
def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The magic string and header np.save writes for a C-ordered array of `shape` and `dtype`."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


class _CacheDamaged(Exception):
    """A file of the market's cache is missing or not what its name promises."""


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype, *, mmap: bool) -> np.ndarray:
    """`path` as written by this module, or _CacheDamaged saying what is wrong with it."""
    try:
        got = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # missing, truncated (shorter than its header says), not .npy
        raise _CacheDamaged(f"{path}: {exc}") from exc
    if got.shape != shape or got.dtype != dtype:
        raise _CacheDamaged(f"{path}: holds {got.dtype}{list(got.shape)}, expected {np.dtype(dtype)}{list(shape)}")
    return got


class _Block:
    """The bars and dividends of sessions [t0, t1). Bars are one array per field: in memory as
    simulated (`arrays`, sessions x companies), and/or in files in `folder`: FIELD.npy
    company-major (companies x sessions), so that the rows of a chunk of symbols are a few
    contiguous reads; or, for the cache's last block (`is_tail`), FIELD.bin session-major with no
    header, one row of n values per session, so that a night appends its row and reads its last few.
    Dividends (DIVIDEND_DTYPE, in session order) are small: kept once read; a tail's are the first
    `tail_dividends` records of dividends.bin."""

    def __init__(self, t0: int, t1: int, n: int, arrays: dict[str, np.ndarray] | None, folder: Path | None,
                 dividends: np.ndarray | None, *, is_tail: bool = False, tail_dividends: int = 0) -> None:
        self.t0, self.t1, self.n = t0, t1, n
        self.arrays = arrays
        self.folder = folder
        self.is_tail = is_tail
        self.tail_dividends = tail_dividends
        self._dividends = dividends
        self._pinned: dict[str, np.ndarray] | None = None
        # Where each field's values start in its .npy file, once _read_rows has checked its header.
        self._offsets: dict[str, int] = {}

    @property
    def nbytes(self) -> int:
        return BAR_BYTES_PER_CELL * self.n * (self.t1 - self.t0)

    def _open(self, field: str) -> np.ndarray:
        dtype = bar_dtype(field)
        if not self.is_tail:
            return _load_npy(self.folder / f"{field}.npy", (self.n, self.t1 - self.t0), dtype, mmap=True)
        # The file may hold more rows than this block (a writer appending, or one killed before it
        # recorded them): only the rows of this block are mapped.
        return _map_rows(self.folder / f"{field}.bin", dtype, (self.t1 - self.t0, self.n))

    def pin(self) -> "_Block":
        """Open the files now and keep them open. A market's last block is replaced when the
        market grows and its files are then removed (or, for a tail, grown); an open map stays
        readable after that, so a reader holding this block never sees it vanish."""
        if self.arrays is None and self._pinned is None:
            self._pinned = {f: self._open(f) for f in BAR_FIELDS}
            _ = self.dividends
        return self

    def read(self, field: str, idx: np.ndarray, a: int, b: int) -> np.ndarray:
        """Companies `idx` (in that order) x sessions [a, b) (absolute indexes) of `field`."""
        if self.arrays is not None:
            return self.arrays[field][a - self.t0 : b - self.t0, idx].T
        if self.is_tail:
            return np.asarray(self.pin()._pinned[field][a - self.t0 : b - self.t0, idx]).T
        if self._pinned is not None:
            return np.asarray(self._pinned[field][idx, a - self.t0 : b - self.t0])
        if len(idx) <= FEW_ROWS:
            return self._read_rows(field, idx, a, b)
        # A memory map read and dropped at once: only the pages of the asked rows are touched.
        mapped = self._open(field)
        try:
            return np.asarray(mapped[idx, a - self.t0 : b - self.t0])
        finally:
            del mapped

    def _read_rows(self, field: str, idx: np.ndarray, a: int, b: int) -> np.ndarray:
        """A few companies' rows read directly from the file: a night's rebase reads a handful of
        symbols from every block of decades, and mapping each file (np.load parses its header)
        cost ten times these reads. The header is checked byte for byte against the one np.save
        writes for this block's shape, once per block and field."""
        path = self.folder / f"{field}.npy"
        dtype = bar_dtype(field)
        width, size, span = self.t1 - self.t0, dtype.itemsize, (b - a) * dtype.itemsize
        out = np.empty((len(idx), b - a), dtype)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise _CacheDamaged(f"{path}: {exc}") from exc
        try:
            if field not in self._offsets:
                want = _npy_header((self.n, width), dtype)
                if os.pread(fd, len(want), 0) != want:
                    raise _CacheDamaged(f"{path}: not the header of {dtype}{[self.n, width]}")
                self._offsets[field] = len(want)
            for r, i in enumerate(idx.tolist()):
                got = os.pread(fd, span, self._offsets[field] + (i * width + a - self.t0) * size)
                if len(got) != span:
                    raise _CacheDamaged(f"{path}: shorter than its header says ({len(got)} of {span} bytes at row {i})")
                out[r] = np.frombuffer(got, dtype)
        except OSError as exc:
            raise _CacheDamaged(f"{path}: {exc}") from exc
        finally:
            os.close(fd)
        return out

    def session_major(self, field: str) -> np.ndarray:
        """All of `field` as sessions x companies (a copy where it comes from a file)."""
        if self.arrays is not None:
            return self.arrays[field]
        if self.is_tail:
            return np.array(self.pin()._pinned[field])
        return np.ascontiguousarray(self.read(field, np.arange(self.n), self.t0, self.t1).T)

    @property
    def dividends(self) -> np.ndarray:
        if self._dividends is None:
            if self.is_tail:
                got = np.array(_map_rows(self.folder / "dividends.bin", DIVIDEND_DTYPE, (self.tail_dividends,)))
            else:
                path = self.folder / "dividends.npy"
                try:
                    got = np.load(path, allow_pickle=False)
                except (OSError, ValueError, EOFError) as exc:
                    raise _CacheDamaged(f"{path}: {exc}") from exc
            if got.dtype != DIVIDEND_DTYPE or got.ndim != 1 or (len(got) and not (self.t0 <= got["t"].min() <= got["t"].max() < self.t1)):
                raise _CacheDamaged(f"{self.folder}: dividends not of sessions {self.t0}..{self.t1 - 1}")
            self._dividends = got
        return self._dividends


def _map_rows(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The first prod(shape) values of a headerless file, mapped read-only; _CacheDamaged when the
    file is missing or shorter."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        held = path.stat().st_size
        if held < size:
            raise _CacheDamaged(f"{path}: {held:,} bytes, its state names {size:,}")
        if size == 0:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)
    except OSError as exc:
        raise _CacheDamaged(f"{path}: {exc}") from exc


def _write_block(folder: Path, arrays: dict[str, np.ndarray], dividends: np.ndarray) -> None:
    """A block's files into `folder` (which exists and is empty): company-major bars, dividends."""
    for field, a in arrays.items():
        np.save(folder / f"{field}.npy", np.ascontiguousarray(a.T))
    np.save(folder / "dividends.npy", dividends)


class _Store:
    """Where finished blocks go. Without a cache: memory while the blocks held there stay within
    `memory_bytes`, then .npy files in a scratch folder of its own under `scratch_root` (the
    system's temporary folder by default), removed with the store. With a cache (`_Cache`): every
    complete block is written to the cache, and kept in memory too while within `memory_bytes`; a
    market's last, incomplete block goes to the cache's tail, by appending the new sessions."""

    def __init__(self, memory_bytes: int, scratch_root: Path | None, cache: "_Cache | None" = None) -> None:
        self.memory_bytes = memory_bytes
        self.held_bytes = 0
        self.spilled_bytes = 0
        self.cached_bytes = 0  # written to the cache by this store
        self.root = scratch_root
        self.cache = cache
        self.folder: Path | None = None
        self._count = 0

    def put(
        self, t0: int, t1: int, arrays: dict[str, np.ndarray], dividends: np.ndarray, *, is_complete: bool,
        is_last: bool, reopened: _Block | None = None,
    ) -> _Block:
        """A block of `arrays` (sessions x companies; the store keeps them: no copy in memory) and
        its `dividends`. `reopened`: the market's earlier last block, whose sessions (the first
        rows of `arrays`, not filled) and dividends this one continues. `is_last`: the market's
        last block, pinned when it lives in files only (see _Block.pin)."""
        n = next(iter(arrays.values())).shape[1]
        k = 0 if reopened is None else reopened.t1 - reopened.t0
        if self.cache is not None and not is_complete:
            # A night adds a row to the tail: it never writes the sessions before it again.
            block = self.cache.append_tail(t0, {f: a[k:] for f, a in arrays.items()}, dividends, reopened)
            self.cached_bytes += BAR_BYTES_PER_CELL * n * (t1 - t0 - k)
            return block.pin()
        if reopened is not None:
            for f in BAR_FIELDS:
                arrays[f][:k] = reopened.session_major(f)
            dividends = np.concatenate([reopened.dividends, dividends])
            self.release(reopened)
        size = BAR_BYTES_PER_CELL * n * (t1 - t0)
        in_memory = self.held_bytes + size <= self.memory_bytes
        if self.cache is not None:
            folder = self.cache.write_block(t0, t1, arrays, dividends)
            self.cached_bytes += size
        elif in_memory:
            folder = None
        else:
            folder = self._folder() / f"block{self._count:05d}"
            self._count += 1
            folder.mkdir()
            _write_block(folder, arrays, dividends)
            self.spilled_bytes += size
        if in_memory:
            self.held_bytes += size
        block = _Block(t0, t1, n, arrays if in_memory else None, folder, dividends)
        return block.pin() if is_last else block

    def release(self, block: _Block) -> None:
        """`block` was replaced by a longer one (the market grew): its memory counts no more, and
        its scratch files go (a reader still holding it has them pinned). The cache removes its
        own replaced files when it records the longer market."""
        if block.arrays is not None:
            self.held_bytes -= block.nbytes
        elif self.cache is None and block.folder is not None:
            _remove_folder(block.folder)

    def _folder(self) -> Path:
        if self.folder is None:
            root = Path(self.root) if self.root is not None else Path(tempfile.gettempdir())
            root.mkdir(parents=True, exist_ok=True)
            _remove_orphans(root)
            self.folder = Path(tempfile.mkdtemp(prefix=f"sample-{os.getpid()}-", dir=root))
            weakref.finalize(self, _remove_folder, self.folder)
        return self.folder


def _remove_folder(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as exc:  # often at interpreter exit: say what is left; the next store removes it
        print(f"sample source: could not remove its scratch folder {folder}: {exc}", file=sys.stderr)


def _append(path: Path, keep_bytes: int, values: np.ndarray) -> None:
    """`values` written after the first `keep_bytes` of `path` (created if missing): what a killed
    writer appended beyond them is cut off first."""
    with open(path, "r+b" if path.exists() else "wb") as out:
        out.truncate(keep_bytes)
        out.seek(keep_bytes)
        out.write(np.ascontiguousarray(values).tobytes())


def _remove(path: Path) -> None:
    """A file or a folder, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_orphans(root: Path) -> None:
    """Our scratch folders of processes that died without removing them (killed, out of memory)."""
    for folder in root.glob("sample-*-*"):
        pid = folder.name.split("-")[1]
        if not pid.isdigit() or _is_alive(int(pid)) or folder.stat().st_uid != os.getuid():
            continue
        _remove_folder(folder)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _block_sessions(n: int) -> int:
    return max(16, min(BLOCK_SESSIONS, BLOCK_BYTES_MAX // (BAR_BYTES_PER_CELL * n)))

