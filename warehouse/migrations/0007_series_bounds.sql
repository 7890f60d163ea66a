-- One row per symbol with bars (indexes and constituents): its first and last stored session.
-- Kept up to date by every load from the rows it merged, so a night can ask "which symbols are
-- behind" or "where does this symbol's history start" without scanning decades of bars.
CREATE TABLE meta.series (
    symbol           VARCHAR NOT NULL PRIMARY KEY,
    first_bar_date   DATE    NOT NULL,
    last_bar_date    DATE    NOT NULL
);

INSERT INTO meta.series
SELECT symbol, min(session_date), max(session_date)
FROM (SELECT symbol, session_date FROM raw.index_bars UNION ALL SELECT symbol, session_date FROM raw.equity_bars)
GROUP BY symbol;
