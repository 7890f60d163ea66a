-- Figures that were only inside headline sentences, or missing, as columns (docs/marts.md,
-- docs/definitions.md): the weekly change and support / resistance levels of every index, and
-- each index's own return since each anchor.

-- Appended to marts.index_daily in this order (transforms/index_levels.py). Null where the
-- window does not hold the sessions the figure needs.
ALTER TABLE marts.index_daily ADD COLUMN change_5d DOUBLE;         -- close - close 5 sessions earlier, index points
ALTER TABLE marts.index_daily ADD COLUMN ret_5d DOUBLE;            -- close / close 5 sessions earlier - 1, fraction
ALTER TABLE marts.index_daily ADD COLUMN support_level DOUBLE;     -- nearest confirmed swing low below the close
ALTER TABLE marts.index_daily ADD COLUMN support_date DATE;        -- the session of that swing low
ALTER TABLE marts.index_daily ADD COLUMN resistance_level DOUBLE;  -- nearest confirmed swing high above the close
ALTER TABLE marts.index_daily ADD COLUMN resistance_date DATE;     -- the session of that swing high

-- One row per index, anchor and session from the anchor session on (transforms/index_performance.py).
CREATE TABLE marts.index_performance (
    symbol               VARCHAR NOT NULL,
    anchor               VARCHAR NOT NULL,
    session_date         DATE    NOT NULL,
    anchor_date          DATE    NOT NULL,
    anchor_close         DOUBLE  NOT NULL,
    close                DOUBLE  NOT NULL,
    return_since_anchor  DOUBLE  NOT NULL,
    PRIMARY KEY (symbol, anchor, session_date)
);
