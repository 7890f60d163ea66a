"""The sample market simulated session by session up to one end (`_simulate`), the state a later
end continues from, and what is read from a simulated market (index bars, actions, members)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import date, timedelta
from typing import Iterator, Sequence

import numpy as np
import polars as pl

from ground import calendar
from sources.base import ACTIONS_SCHEMA, BARS_SCHEMA, conform
from sources.sample_companies import (
    BAR_FIELDS,
    DELIST_AFTER_SESSIONS,
    DELIST_SHARE,
    DIVIDEND_PRICE_LAG,
    DROP_BOTTOM_QUANTILE,
    FACTOR_REVERSION,
    GRADUATE_MULTIPLE,
    INDEX_BASE,
    INDEX_SYMBOLS,
    IXIC_BETA,
    JUNK_SD,
    NEVER,
    N_FOUNDING,
    N_INDEX_NOISE,
    RANK_LAG,
    REFILL_FLOOR_SHARE,
    REGIMES,
    RING,
    SECTORS,
    SECTOR_SD,
    SMALL_BETA_TO_BROAD,
    SP600_BUFFER,
    SP600_SIZE,
    TAG_DELIST,
    TAG_SESSION,
    VIX_FLOOR_PTS,
    VIX_LAMBDA,
    VIX_SLOPE,
    VIX_START_SD,
    _Companies,
    _Quarters,
    _layout,
    _n_quarters,
    _quarters,
    _ttm_at,
    bar_dtype,
)
from sources.sample_blocks import DIVIDEND_DTYPE, NO_DIVIDENDS, _Block, _Store, _block_sessions


# The simulated market up to one end ----------------------------------------------------------------


def _regime_params(session64: np.ndarray) -> np.ndarray:
    starts = np.array([np.datetime64(r[0], "D") for r in REGIMES])
    idx = np.searchsorted(starts, session64, side="right") - 1
    table = np.array([r[1:] for r in REGIMES])
    return table[np.clip(idx, 0, len(REGIMES) - 1)]  # T x 5: g_mu g_sd s_mu s_sd j_mu


def _last_friday_of_june(year: int) -> date:
    d = date(year, 6, 30)
    return d - timedelta(days=(d.weekday() - 4) % 7)


@dataclass
class _Carry:
    """What session T needs from the sessions before it: the state a later end continues from."""

    level: np.ndarray  # cumulative g, s, j so far
    trend: np.ndarray  # cumulative drifts of g, s, j so far
    price: np.ndarray  # unrounded price path (NaN before listing)
    c_prev: np.ndarray  # the previous session's close, delisted companies included
    ring: np.ndarray  # RING x n: close of session t in row t % RING (NaN where not listed)
    growth: np.ndarray  # dividend total-return factor since each company's first session
    rus: np.ndarray  # members after the last session (bool)
    sp: np.ndarray
    delist_idx: np.ndarray  # first session without a bar (NEVER, or possibly beyond the sessions)

    def copy(self) -> "_Carry":
        return replace(self, **{k: np.copy(v) for k, v in vars(self).items() if isinstance(v, np.ndarray)})


@dataclass(frozen=True)
class _Epoch:
    """Members from session `t` until the next epoch (membership changes only at reconstitutions)."""

    t: int
    members: dict[str, np.ndarray]  # universe -> sorted company indexes


@dataclass(frozen=True)
class _Market:
    """The market simulated from `start` to `sessions[-1]`; never changed once built (a later end
    builds a new one from `carry`, sharing the blocks), so readers in other threads are safe."""

    sessions: list[date]
    session64: np.ndarray  # datetime64[D]
    first_idx: np.ndarray  # first session index each company trades (T if not yet)
    delist_idx: np.ndarray  # first session without a bar, or a huge number
    epochs: tuple[_Epoch, ...]
    blocks: tuple[_Block, ...]  # bars by time, in order (empty for a membership-only market)
    quarters: "_Quarters"
    g: np.ndarray  # T: broad-market factor
    fac: np.ndarray  # T x N_INDEX_NOISE: index-level noise
    levels: dict[str, np.ndarray]  # ^RUT, ^SP600 levels (T)
    volumes: dict[str, np.ndarray]  # ^RUT, ^SP600 member volume (T)
    carry: _Carry

    @cached_property
    def last_idx(self) -> np.ndarray:
        """Last session index with a bar (T-1 unless delisted before)."""
        return np.minimum(self.delist_idx, len(self.sessions)) - 1

    @cached_property
    def _index_series(self) -> dict[str, tuple[np.ndarray, ...]]:
        return _indexes(self.g, self.fac, self.levels, self.volumes)

    def index_bars(self, symbols: Sequence[str], a: int, b: int) -> pl.DataFrame:
        """Bars of the index `symbols` (in INDEX_SYMBOLS order) for sessions [a, b): the series are
        a few numbers per session, the frame is built for the window only."""
        frames = []
        for sym in (s for s in INDEX_SYMBOLS if s in symbols):
            o, h, lo, c, volume = (x[a:b] if x is not None else None for x in self._index_series[sym])
            frames.append(
                pl.DataFrame(
                    {
                        "symbol": pl.Series([sym]).gather(np.zeros(b - a, dtype=np.int64)),
                        "session_date": self.session64[a:b], "open": o, "high": h, "low": lo, "close": c, "adj_close": c,
                        "volume": pl.Series(volume, dtype=pl.Int64) if volume is not None else pl.Series([None] * (b - a), dtype=pl.Int64),
                    }
                )
            )
        return conform(pl.concat(frames), BARS_SCHEMA, "sample index bars")

    def actions(self, co: _Companies, idx: np.ndarray, a: int, b: int) -> pl.DataFrame:
        """Dividends and splits of companies `idx` with ex-dates in sessions [a, b), ordered by
        session, symbol, action: read from the blocks of those sessions only."""
        divs = [blk.dividends for blk in self.blocks if blk.t0 < b and blk.t1 > a]
        d = np.concatenate(divs) if divs else NO_DIVIDENDS
        d = d[(d["t"] >= a) & (d["t"] < b) & np.isin(d["i"], idx)]
        s_i, s_t = _splits(self.session64, co, self.first_idx, self.last_idx)
        keep = (s_t >= a) & (s_t < b) & np.isin(s_i, idx)
        s_i, s_t = s_i[keep], s_t[keep]
        frame = pl.DataFrame(
            {
                "symbol": co.symbol[np.concatenate([d["i"], s_i])],
                "ex_date": self.session64[np.concatenate([d["t"], s_t])],
                "idx": np.concatenate([d["t"], s_t]),
                "action": ["dividend"] * len(d) + ["split"] * len(s_i),
                "value": np.concatenate([d["value"], co.split_ratio[s_i]]),
            },
            schema=_ACTIONS_WITH_IDX,
        )
        return conform(frame.sort("idx", "symbol", "action"), ACTIONS_SCHEMA, "sample actions")

    def epoch_spans(self, a: int, b: int) -> Iterator[tuple[int, int, _Epoch]]:
        """(from, to, epoch) for the parts of sessions [a, b) each epoch covers."""
        ends = [e.t for e in self.epochs[1:]] + [len(self.sessions)]
        for epoch, end in zip(self.epochs, ends):
            lo, hi = max(a, epoch.t), min(b, end)
            if lo < hi:
                yield lo, hi, epoch

    def members_at(self, universe: str, t: int) -> np.ndarray:
        k = bisect.bisect_right([e.t for e in self.epochs], t) - 1
        return self.epochs[k].members[universe]

    def read(self, field: str, idx: np.ndarray, a: int, b: int) -> np.ndarray:
        """len(idx) x (b - a) values of `field` (company-major), read block by block."""
        parts = [blk.read(field, idx, max(a, blk.t0), min(b, blk.t1)) for blk in self.blocks if blk.t0 < b and blk.t1 > a]
        if not parts:
            return np.empty((len(idx), 0), bar_dtype(field))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _simulate(
    seed: int, start: date, last: date, co: _Companies, prev: _Market | None, store: _Store | None, *, full: bool = True
) -> _Market:
    """The market up to `last`, continuing `prev` (the same market to an earlier end) when given.

    One pass over the sessions, in order: each session's draws, closes, the reconstitution that
    happens on it, then its bars into the current block. Everything a session reads is in `carry`
    or in the per-session series, so the pass never holds more than a block of bars.
    """
    if not full and prev is not None:
        raise ValueError("a membership-only market keeps no closes to continue from: simulate it again")
    sessions = calendar.sessions(start, last)
    if not sessions:
        raise ValueError(f"the sample market has no NYSE session in {start}..{last}")
    T, n = len(sessions), len(co.symbol)
    T0 = 0 if prev is None else len(prev.sessions)
    session64 = np.array(sessions, dtype="datetime64[D]")
    first_idx = np.searchsorted(session64, co.listing_date, side="left")  # first session on/after listing
    quarters = _quarters(seed, start, co, _n_quarters(start, last), prev.quarters if prev is not None else None)
    params = _regime_params(session64[T0:])

    if prev is None:
        carry = _Carry(
            level=np.zeros(3), trend=np.zeros(3), price=np.full(n, np.nan), c_prev=np.full(n, np.nan),
            ring=np.full((RING, n), np.nan), growth=np.ones(n), rus=np.zeros(n, bool), sp=np.zeros(n, bool),
            delist_idx=np.full(n, NEVER),
        )
        epochs: list[_Epoch] = []
        blocks: list[_Block] = []
    else:
        carry = prev.carry.copy()
        epochs, blocks = list(prev.epochs), list(prev.blocks)

    def grown(old: np.ndarray | None, shape_tail: tuple = (), dtype=float) -> np.ndarray:
        out = np.zeros((T, *shape_tail), dtype)
        if old is not None:
            out[:T0] = old
        return out

    g = grown(prev.g if prev else None)
    fac = grown(prev.fac if prev else None, (N_INDEX_NOISE,))
    levels = {u: grown(prev.levels[u] if prev else None) for u in ("^RUT", "^SP600")}
    volumes = {u: grown(prev.volumes[u] if prev else None, dtype=np.int64) for u in ("^RUT", "^SP600")}

    recon: dict[int, int] = {}
    for year in range(sessions[T0].year, sessions[-1].year + 1):
        friday = _last_friday_of_june(year)
        day = calendar.session_on_or_before(friday)
        if (friday - day).days > 6:  # the calendar ends before that June (it runs 400 days ahead)
            continue
        i = bisect.bisect_left(sessions, day)
        if max(T0, 1) <= i < T and sessions[i] == day:
            recon[i] = year
    div_t, div_i = _dividend_schedule(session64, co, T0, T) if full else (np.zeros(0, int), np.zeros(0, int))
    # Without bars, closes matter only where a reconstitution reads them: its rank day and itself.
    close_days = {0} | set(recon) | {max(0, t - RANK_LAG) for t in recon}
    div_at = np.searchsorted(div_t, np.arange(T0, T + 1), side="left")

    B = _block_sessions(n)
    buffers = {f: np.empty((B, n), bar_dtype(f)) for f in BAR_FIELDS} if full else {}
    block_t0 = T0
    block_dividends: list[np.ndarray] = []
    # Blocks start every B sessions whatever ends the market was built to: a last block cut short by
    # an earlier end is reopened and completed, so a market grown night by night is stored as the
    # same blocks as one built at once (and its cache as the same files).
    # Its sessions are read only if the block completes (or the store keeps whole blocks): a night
    # on a cached market appends its row to the cache's tail.
    reopened = None
    if full and blocks and blocks[-1].t1 - blocks[-1].t0 < B:
        reopened = blocks.pop()
        block_t0 = reopened.t0
    sig2 = co.idio_sd**2 / 2
    n_z = 3 + len(SECTORS) + N_INDEX_NOISE
    members_idx = {u: np.nonzero(m)[0] for u, m in (("^RUT", carry.rus), ("^SP600", carry.sp))}
    for t in range(T0, T):
        rng = np.random.default_rng([seed, TAG_SESSION, t])
        z = rng.standard_normal(n_z)
        # Membership needs only the closes: their noise is the first row of the bars' four, the
        # same numbers whether or not the other three rows are drawn after it.
        e = rng.standard_normal((4, n) if full else (1, n))
        g_mu, g_sd, s_mu, s_sd, j_mu = params[t - T0]
        mu = np.array([g_mu, s_mu, j_mu])
        carry.trend += mu
        step = mu + FACTOR_REVERSION * (carry.trend - mu - carry.level) + np.array([g_sd, s_sd, JUNK_SD]) * z[:3]
        carry.level += step
        g[t], s_t, j = step
        m = SMALL_BETA_TO_BROAD * g[t] + s_t
        sector = SECTOR_SD * z[3 : 3 + len(SECTORS)]
        fac[t] = z[3 + len(SECTORS) :]
        x = co.alpha + co.beta * m + co.is_loss * j + sector[co.sector_code] + co.idio_sd * e[0] - sig2
        prev_close = carry.c_prev
        price = carry.price * np.exp(x)
        new = first_idx == t
        price[new] = co.price0[new]
        carry.price = price
        if not (full or t in close_days):
            continue
        c = np.round(np.maximum(price, 0.01), 4)  # NaN exactly where not listed yet

        # Index levels: the members of the previous snapshot, priced yesterday and today. Members
        # trade on both sessions (listed before the rank day, never delisted while members).
        if t > 0 and full:
            for u in ("^RUT", "^SP600"):
                idx = members_idx[u]
                before = (co.shares[idx] * prev_close[idx]).sum()
                after = (co.shares[idx] * c[idx]).sum()
                levels[u][t] = levels[u][t - 1] * after / before
        elif t == 0:
            levels["^RUT"][0], levels["^SP600"][0] = INDEX_BASE["^RUT"], INDEX_BASE["^SP600"]

        if t == 0:
            carry.rus[:N_FOUNDING] = True
            cap = np.nan_to_num(c) * co.shares
            carry.sp = _select_sp600(carry.sp, 0, session64, co, quarters, cap, first_idx, carry.delist_idx)
        elif t in recon:
            rank_cap = np.nan_to_num(carry.ring[max(0, t - RANK_LAG) % RING]) * co.shares
            _reconstitute(seed, recon[t], t, carry, session64, co, quarters, rank_cap, np.nan_to_num(c) * co.shares, first_idx)
        if t == 0 or t in recon:
            members_idx = {"^RUT": np.nonzero(carry.rus)[0], "^SP600": np.nonzero(carry.sp)[0]}
            epochs.append(_Epoch(t, {"russell2000": members_idx["^RUT"], "sp600": members_idx["^SP600"]}))

        if full:
            r = t - block_t0
            payers = div_i[div_at[t - T0] : div_at[t - T0 + 1]]
            _bars_row(buffers, r, co, t, c, prev_close, price, new, e, x, carry, first_idx, payers, block_dividends)
            for u in ("^RUT", "^SP600"):
                volumes[u][t] = buffers["volume"][r, members_idx[u]].sum()
            if r == B - 1 or t == T - 1:
                done = {f: buffers[f][: r + 1].copy() if r < B - 1 else buffers[f] for f in BAR_FIELDS}
                dividends = np.concatenate(block_dividends) if block_dividends else NO_DIVIDENDS
                blocks.append(store.put(block_t0, t + 1, done, dividends, is_complete=r == B - 1, is_last=t == T - 1, reopened=reopened))
                block_dividends, reopened = [], None
                if t < T - 1:
                    buffers = {f: np.empty_like(a) for f, a in buffers.items()}
                block_t0 = t + 1
        carry.ring[t % RING] = c
        carry.c_prev = c

    return _Market(
        sessions=sessions, session64=session64, first_idx=first_idx, delist_idx=carry.delist_idx.copy(),
        epochs=tuple(epochs), blocks=tuple(blocks), quarters=quarters, g=g, fac=fac, levels=levels, volumes=volumes,
        carry=carry,
    )


def _bars_row(
    buffers, r, co: _Companies, t, c, prev_close, price, new, e, x, carry: _Carry, first_idx, payers, dividends
) -> None:
    """Session t's bars into row r of the block buffers; its dividends (DIVIDEND_DTYPE) onto `dividends`."""
    # Open: part of the day's move happens overnight; the first bar opens at its close's level.
    o = np.where(new, c * np.exp(0.01 * e[1]), prev_close * np.exp(0.35 * x + 0.25 * co.idio_sd * e[1]))
    o = np.round(o, 4)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    hi = np.round(top * np.exp(0.4 * co.idio_sd * np.abs(e[2])), 4)
    lo = np.round(bottom * np.exp(-0.4 * co.idio_sd * np.abs(e[3])), 4)
    trading = np.isfinite(price) & (t < carry.delist_idx)  # delisted companies stop trading
    close = buffers["close"][r]
    close[:] = np.where(trading, c, np.nan)
    buffers["open"][r] = np.where(trading, o, np.nan)
    buffers["high"][r] = np.where(trading, np.maximum(hi, top), np.nan)
    buffers["low"][r] = np.where(trading, np.minimum(lo, bottom), np.nan)
    # Busy days trade more: volume rises with the size of the move.
    v = co.shares * co.turnover * np.exp(0.4 * e[2] - 0.08 + 6 * np.abs(x))
    buffers["volume"][r] = np.where(trading, np.maximum(1, np.round(v)), 0).astype(np.int64)

    # Dividends: ex-dates of this session, of companies trading since before it and not delisted;
    # the amount is set from a past close (a known yield on a known price).
    i = payers[(t > first_idx[payers]) & (t < carry.delist_idx[payers])]
    if len(i):
        ref = np.maximum(t - DIVIDEND_PRICE_LAG, first_idx[i])
        dps = np.maximum(0.01, np.round(co.div_yield[i] / 4 * carry.ring[ref % RING, i], 2))
        # Forward-accumulated total-return factor: 1 on a company's first session, never revised.
        carry.growth[i] = carry.growth[i] * ((close[i] + dps) / close[i])
        paid = np.zeros(len(i), DIVIDEND_DTYPE)
        paid["i"], paid["t"], paid["value"] = i, t, dps
        dividends.append(paid)
    buffers["adj_close"][r] = close * carry.growth


def _dividend_schedule(session64: np.ndarray, co: _Companies, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Ex-date session index and company of every quarterly dividend falling in sessions [t0, t1),
    sorted by session: a fixed number of days into each calendar quarter, the first session on or
    after that day. Listing and delisting are checked when the session comes."""
    payers = np.nonzero(co.div_yield > 0)[0]
    first_q = session64[t0].astype("datetime64[M]").astype(int) // 3 - 1  # an ex-date can roll into t0
    last_q = session64[t1 - 1].astype("datetime64[M]").astype(int) // 3
    rows_i, rows_t = [], []
    for q in range(first_q, last_q + 1):
        q_start = np.datetime64(f"{1970 + q // 4}-{(q % 4) * 3 + 1:02d}-01", "D")
        ex = q_start + co.div_offset_days[payers].astype("timedelta64[D]")
        t = np.searchsorted(session64, ex, side="left")
        ok = (t >= t0) & (t < t1)
        rows_i.append(payers[ok])
        rows_t.append(t[ok])
    i = np.concatenate(rows_i) if rows_i else np.zeros(0, int)
    t = np.concatenate(rows_t) if rows_t else np.zeros(0, int)
    order = np.argsort(t, kind="stable")
    return t[order], i[order]


def _reconstitute(seed, year, t, carry: _Carry, session64, co: _Companies, quarters, rank_cap, cap, first_idx) -> None:
    """The yearly reconstitution on session t: russell2000 by cap on the rank day, sp600 by the
    S&P-like rule, and the delisting of some of the companies that left both."""
    n = len(co.symbol)
    rank_t = max(0, t - RANK_LAG)
    rus, sp = carry.rus, carry.sp
    eligible = (first_idx <= rank_t) & (carry.delist_idx == NEVER)
    c = rank_cap
    lower = np.quantile(c[rus], DROP_BOTTOM_QUANTILE)
    upper = GRADUATE_MULTIPLE * np.median(c[rus])
    keep = rus & eligible & (c >= lower) & (c <= upper)
    # The largest non-members refill, those above the drop line first: only when too few of them
    # are left (after years of small companies drifting down) do smaller ones get a seat.
    candidates = np.nonzero(~rus & eligible & (c <= upper))[0]
    room = N_FOUNDING - keep.sum()
    add = candidates[np.argsort(-c[candidates], kind="stable")][: max(room, 0)]
    new_rus = keep.copy()
    new_rus[add] = True
    new_sp = _select_sp600(sp, t, session64, co, quarters, cap, first_idx, carry.delist_idx)
    # Some of the companies that left both universes later delist (acquired, bankrupt).
    left = (rus | sp) & ~(new_rus | new_sp)
    rng = np.random.default_rng([seed, TAG_DELIST, year])
    u, k = rng.random(n), rng.integers(DELIST_AFTER_SESSIONS[0], DELIST_AFTER_SESSIONS[1], n)
    delisting = left & (u < DELIST_SHARE)
    pool = int((eligible & ~new_rus & ~new_sp & (c <= upper)).sum())
    allowed = max(0, pool - round(REFILL_FLOOR_SHARE * _layout(n).n_pool))
    if delisting.sum() > allowed:  # at the floor: the smallest draws delist, the others stay listed
        chosen = np.nonzero(delisting)[0]
        delisting = np.zeros(n, bool)
        delisting[chosen[np.argsort(u[chosen], kind="stable")][:allowed]] = True
    # A session index, possibly beyond the simulated sessions: it holds whatever the end.
    carry.delist_idx = np.where(delisting, t + k, carry.delist_idx)
    carry.rus, carry.sp = new_rus, new_sp


def _select_sp600(current, t, session64, co, quarters, cap, first_idx, delist_idx):
    """The S&P-600-like rule: positive TTM net income known at the selection session; seats go by a
    size score (log cap plus a fixed per-company taste); members keep seats within a buffer."""
    ttm = _ttm_at(quarters, session64[t])
    eligible = (first_idx <= t) & (delist_idx == NEVER) & (ttm > 0)
    score = np.where(eligible, np.log(np.maximum(cap, 1.0)) + co.sp_score_noise, -np.inf)
    order = np.argsort(-score, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keep = current & eligible & (rank < SP600_BUFFER)
    room = SP600_SIZE - int(keep.sum())
    fill = [i for i in order[: SP600_SIZE + SP600_BUFFER] if eligible[i] and not keep[i]][: max(room, 0)]
    new = keep.copy()
    new[fill] = True
    return new


_ACTIONS_WITH_IDX = {**ACTIONS_SCHEMA, "idx": pl.Int64}  # idx: session index, for slicing


def _splits(session64, co: _Companies, first_idx, last_idx) -> tuple[np.ndarray, np.ndarray]:
    """Company and session index of every split on a session where the company trades (and has
    traded before: a split on the first bar would change nothing)."""
    T = len(session64)
    has = np.nonzero(co.split_ratio > 0)[0]
    t = np.searchsorted(session64, co.split_date[has], side="left")
    ok = (t < T) & (t > first_idx[has]) & (t <= last_idx[has])
    return has[ok], t[ok]


def _ohlc(close: np.ndarray, noise: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open/high/low around an index close path: the open sits between yesterday's and today's close."""
    prev = np.concatenate([[close[0] / np.exp(spread * noise[0, 0])], close[:-1]])
    o = prev + (close - prev) * np.clip(0.3 + 0.2 * noise[:, 0], 0, 1)
    hi = np.maximum(o, close) * np.exp(spread * np.abs(noise[:, 1]))
    lo = np.minimum(o, close) * np.exp(-spread * np.abs(noise[:, 2]))
    return np.round(o, 2), np.round(np.maximum(hi, np.maximum(o, close)), 2), np.round(np.minimum(lo, np.minimum(o, close)), 2)


def _indexes(g, fac, levels_cap, volumes_cap) -> dict[str, tuple[np.ndarray, ...]]:
    """The five index series from the per-session factors and the cap-weighted levels: symbol ->
    open, high, low, close, volume (None for ^VIX), one value per session."""
    T = len(g)
    levels, volumes = dict(levels_cap), dict(volumes_cap)
    # The broad market: the first session is the base level; later sessions compound g.
    g_path = np.concatenate([[0.0], g[1:]])
    levels["^GSPC"] = INDEX_BASE["^GSPC"] * np.exp(np.cumsum(g_path))
    ixic = IXIC_BETA * g_path + 0.004 * fac[:, 15] * (np.arange(T) > 0)
    levels["^IXIC"] = INDEX_BASE["^IXIC"] * np.exp(np.cumsum(ixic))
    volumes["^GSPC"] = np.round(4.0e9 * np.exp(0.15 * fac[:, 16] + 8 * np.abs(g_path))).astype(np.int64)
    volumes["^IXIC"] = np.round(7.0e9 * np.exp(0.15 * fac[:, 17] + 8 * np.abs(ixic))).astype(np.int64)
    # VIX: realized broad-market volatility (EWMA of squared returns), annualized, mapped to implied.
    var = np.empty(T)
    v = VIX_START_SD**2
    for t in range(T):
        v = VIX_LAMBDA * v + (1 - VIX_LAMBDA) * g_path[t] ** 2 if t else v
        var[t] = v
    realized = 100 * np.sqrt(252 * var)
    vix = np.clip((VIX_FLOOR_PTS + VIX_SLOPE * realized) * np.exp(0.04 * fac[:, 18]), 9.0, 90.0)
    levels["^VIX"] = vix

    series = {}
    for k, sym in enumerate(INDEX_SYMBOLS):
        c = np.round(levels[sym], 2)
        spread = 0.03 if sym == "^VIX" else 0.004
        o, h, lo = _ohlc(c, fac[:, 3 * k : 3 * k + 3], spread)
        series[sym] = (o, h, lo, c, volumes.get(sym))
    return series

