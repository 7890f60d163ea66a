-- The warehouse contract, first version. Layers: raw (as received) -> core (cleaned, derived)
-- -> marts (the BI contract, documented in docs/marts.md); meta and dq record what happened.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS meta;
CREATE SCHEMA IF NOT EXISTS dq;

-- raw ------------------------------------------------------------------------------------------

-- One row per index and session. Index volume is not meaningful (^VIX has none): nullable.
CREATE TABLE raw.index_bars (
    symbol        VARCHAR   NOT NULL,
    session_date  DATE      NOT NULL,
    open          DOUBLE,
    high          DOUBLE,
    low           DOUBLE,
    close         DOUBLE    NOT NULL,
    adj_close     DOUBLE,
    volume        BIGINT,
    source        VARCHAR   NOT NULL,
    fetched_at    TIMESTAMP NOT NULL,
    load_id       VARCHAR   NOT NULL,
    PRIMARY KEY (symbol, session_date)
);

-- One row per constituent and session; adj_close carries splits and dividends.
CREATE TABLE raw.equity_bars (
    symbol        VARCHAR   NOT NULL,
    session_date  DATE      NOT NULL,
    open          DOUBLE,
    high          DOUBLE,
    low           DOUBLE,
    close         DOUBLE    NOT NULL,
    adj_close     DOUBLE    NOT NULL,
    volume        BIGINT,
    source        VARCHAR   NOT NULL,
    fetched_at    TIMESTAMP NOT NULL,
    load_id       VARCHAR   NOT NULL,
    PRIMARY KEY (symbol, session_date)
);

-- One row per universe, snapshot date and member (equities only; other lines go to dq.quarantine
-- with reason 'excluded: ...'). weight_pct is the share of the whole fund, as published.
CREATE TABLE raw.holdings (
    universe          VARCHAR   NOT NULL,
    as_of_date        DATE      NOT NULL,
    symbol            VARCHAR   NOT NULL,
    ticker            VARCHAR   NOT NULL,
    name              VARCHAR,
    sector            VARCHAR,
    asset_class       VARCHAR,
    exchange          VARCHAR,
    weight_pct        DOUBLE,
    market_value_usd  DOUBLE,
    shares            DOUBLE,
    price_usd         DOUBLE,
    source            VARCHAR   NOT NULL,
    fetched_at        TIMESTAMP NOT NULL,
    load_id           VARCHAR   NOT NULL,
    PRIMARY KEY (universe, as_of_date, symbol)
);

-- One row per company and fiscal quarter. first_seen_at: when we first stored the quarter.
CREATE TABLE raw.fundamentals (
    symbol                 VARCHAR   NOT NULL,
    period_end_date        DATE      NOT NULL,
    report_date            DATE,
    net_income_common_usd  DOUBLE,
    net_income_usd         DOUBLE,
    diluted_eps            DOUBLE,
    revenue_usd            DOUBLE,
    first_seen_at          TIMESTAMP NOT NULL,
    source                 VARCHAR   NOT NULL,
    fetched_at             TIMESTAMP NOT NULL,
    load_id                VARCHAR   NOT NULL,
    PRIMARY KEY (symbol, period_end_date)
);

-- One row per company, ex-date and action ('split': new shares per old; 'dividend': USD per share).
CREATE TABLE raw.corporate_actions (
    symbol      VARCHAR   NOT NULL,
    ex_date     DATE      NOT NULL,
    action      VARCHAR   NOT NULL,
    value       DOUBLE    NOT NULL,
    source      VARCHAR   NOT NULL,
    fetched_at  TIMESTAMP NOT NULL,
    load_id     VARCHAR   NOT NULL,
    PRIMARY KEY (symbol, ex_date, action)
);

-- One row per stored value that a later fetch changed (Yahoo revises history).
CREATE TABLE raw.revisions (
    load_id      VARCHAR   NOT NULL,
    table_name   VARCHAR   NOT NULL,
    row_key      VARCHAR   NOT NULL,
    column_name  VARCHAR   NOT NULL,
    old_value    VARCHAR,
    new_value    VARCHAR,
    revised_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (load_id, table_name, row_key, column_name)
);

-- core -----------------------------------------------------------------------------------------

-- One row per NYSE session (exchange_calendars XNYS) in the loaded range.
CREATE TABLE core.sessions (
    session_date    DATE    NOT NULL PRIMARY KEY,
    year            INTEGER NOT NULL,
    is_early_close  BOOLEAN NOT NULL
);

-- One row per universe, symbol and membership interval. valid_to_date: last session as a member,
-- null while the symbol is in the latest snapshot.
CREATE TABLE core.membership (
    universe         VARCHAR NOT NULL,
    symbol           VARCHAR NOT NULL,
    valid_from_date  DATE    NOT NULL,
    valid_to_date    DATE,
    PRIMARY KEY (universe, symbol, valid_from_date)
);

-- One row per universe, member and session: its cohort as of that session (no look-ahead),
-- its sector and its weight in the universe's equity sleeve (fraction, sums to 1 per session).
CREATE TABLE core.cohorts (
    universe              VARCHAR NOT NULL,
    symbol                VARCHAR NOT NULL,
    session_date          DATE    NOT NULL,
    sector                VARCHAR,
    weight                DOUBLE,
    cohort                VARCHAR NOT NULL,  -- profitable | unprofitable | no_data
    ttm_net_income_usd    DOUBLE,
    quarters_counted      INTEGER NOT NULL,
    rule_version          VARCHAR NOT NULL,
    PRIMARY KEY (universe, symbol, session_date)
);

-- One row per constituent and session: adjusted close and the daily return on it.
CREATE TABLE core.equity_returns (
    symbol        VARCHAR NOT NULL,
    session_date  DATE    NOT NULL,
    adj_close     DOUBLE  NOT NULL,
    ret_1d        DOUBLE,
    PRIMARY KEY (symbol, session_date)
);

-- marts (the BI contract: docs/marts.md) -------------------------------------------------------

CREATE TABLE marts.index_daily (
    symbol                VARCHAR NOT NULL,
    session_date          DATE    NOT NULL,
    close                 DOUBLE  NOT NULL,
    ret_1d                DOUBLE,
    ytd_return            DOUBLE,
    is_record_close       BOOLEAN NOT NULL,
    records_ytd           INTEGER NOT NULL,
    drawdown_from_record  DOUBLE  NOT NULL,
    rsi_14                DOUBLE,
    sma_50                DOUBLE,
    sma_200               DOUBLE,
    high_52w              DOUBLE,
    low_52w               DOUBLE,
    PRIMARY KEY (symbol, session_date)
);

CREATE TABLE marts.index_records (
    symbol             VARCHAR NOT NULL,
    year               INTEGER NOT NULL,
    record_closes      INTEGER NOT NULL,
    first_record_date  DATE,
    last_record_date   DATE,
    history_start      DATE    NOT NULL,
    PRIMARY KEY (symbol, year)
);

CREATE TABLE marts.relative_performance (
    lead_symbol     VARCHAR NOT NULL,
    lag_symbol      VARCHAR NOT NULL,
    session_date    DATE    NOT NULL,
    lead_ret        DOUBLE,
    lag_ret         DOUBLE,
    spread          DOUBLE,
    outperformed    BOOLEAN NOT NULL,
    streak          INTEGER NOT NULL,
    longest_since   DATE,
    ytd_spread      DOUBLE,
    PRIMARY KEY (lead_symbol, lag_symbol, session_date)
);

CREATE TABLE marts.cohort_composition (
    universe          VARCHAR NOT NULL,
    session_date      DATE    NOT NULL,
    cohort            VARCHAR NOT NULL,
    members           INTEGER NOT NULL,
    share_of_members  DOUBLE  NOT NULL,
    share_of_weight   DOUBLE,
    rule_version      VARCHAR NOT NULL,
    PRIMARY KEY (universe, session_date, cohort)
);

CREATE TABLE marts.cohort_performance (
    universe             VARCHAR NOT NULL,
    anchor               VARCHAR NOT NULL,
    cohort               VARCHAR NOT NULL,
    session_date         DATE    NOT NULL,
    anchor_date          DATE    NOT NULL,
    members              INTEGER NOT NULL,
    priced               INTEGER NOT NULL,
    return_equal_weight  DOUBLE,
    return_cap_weight    DOUBLE,
    return_median        DOUBLE,
    PRIMARY KEY (universe, anchor, cohort, session_date)
);

CREATE TABLE marts.sector_daily (
    universe             VARCHAR NOT NULL,
    sector               VARCHAR NOT NULL,
    session_date         DATE    NOT NULL,
    members              INTEGER NOT NULL,
    return_equal_weight  DOUBLE,
    return_cap_weight    DOUBLE,
    PRIMARY KEY (universe, sector, session_date)
);

CREATE TABLE marts.headlines (
    as_of_date  DATE    NOT NULL,
    fact_key    VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,  -- reading order within the night
    sentence    VARCHAR NOT NULL,
    value       DOUBLE,
    unit        VARCHAR,           -- index_points, fraction, bp, sessions, count, date
    definition  VARCHAR NOT NULL,
    inputs      VARCHAR NOT NULL,  -- JSON: the mart rows and figures the sentence was made from
    PRIMARY KEY (as_of_date, fact_key)
);

-- meta -----------------------------------------------------------------------------------------

-- One row per load (a nightly or backfill run, or a csv import).
CREATE TABLE meta.loads (
    load_id           VARCHAR   NOT NULL PRIMARY KEY,
    flow_run_id       VARCHAR,
    flow_name         VARCHAR   NOT NULL,
    source            VARCHAR   NOT NULL,
    start_date        DATE,
    end_date          DATE,
    sessions          INTEGER,
    rows_in           BIGINT,
    rows_loaded       BIGINT,
    rows_changed      BIGINT,
    rows_quarantined  BIGINT,
    status            VARCHAR   NOT NULL,  -- running | succeeded | blocked | failed | skipped
    message           VARCHAR,
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP,
    timings           VARCHAR             -- JSON: seconds per stage
);

-- One row per load and raw table: what arrived and what became of it.
CREATE TABLE meta.load_tables (
    load_id           VARCHAR NOT NULL,
    table_name        VARCHAR NOT NULL,
    rows_in           BIGINT  NOT NULL,
    rows_loaded       BIGINT  NOT NULL,
    rows_inserted     BIGINT  NOT NULL,
    rows_changed      BIGINT  NOT NULL,
    rows_quarantined  BIGINT  NOT NULL,
    PRIMARY KEY (load_id, table_name)
);

-- One row per symbol and dataset that a live source tried: failures are fetched first next time.
CREATE TABLE meta.fetch_state (
    symbol                VARCHAR   NOT NULL,
    dataset               VARCHAR   NOT NULL,  -- bars | fundamentals | holdings
    last_attempt_at       TIMESTAMP NOT NULL,
    last_success_at       TIMESTAMP,
    last_error            VARCHAR,
    consecutive_failures  INTEGER   NOT NULL,
    PRIMARY KEY (symbol, dataset)
);

-- One row per holdings ticker seen: the Yahoo symbol it maps to and how.
CREATE TABLE meta.symbols (
    ticker          VARCHAR NOT NULL PRIMARY KEY,
    symbol          VARCHAR NOT NULL,
    rule            VARCHAR NOT NULL,  -- identity | share_class | dot_to_dash | override
    first_seen_date DATE    NOT NULL,
    last_seen_date  DATE    NOT NULL,
    status          VARCHAR NOT NULL   -- active | delisted | renamed
);

-- One row per published snapshot.
CREATE TABLE meta.publishes (
    load_id       VARCHAR   NOT NULL PRIMARY KEY,
    as_of_date    DATE      NOT NULL,
    path          VARCHAR   NOT NULL,
    bytes         BIGINT    NOT NULL,
    published_at  TIMESTAMP NOT NULL
);

-- dq -------------------------------------------------------------------------------------------

-- One row per load, table and expectation: every outcome, pass or fail.
CREATE TABLE dq.results (
    load_id           VARCHAR   NOT NULL,
    table_name        VARCHAR   NOT NULL,
    expectation       VARCHAR   NOT NULL,  -- suite's name for the check, e.g. high_ge_low
    severity          VARCHAR   NOT NULL,  -- error | warning
    success           BOOLEAN   NOT NULL,
    element_count     BIGINT,
    unexpected_count  BIGINT,
    details           VARCHAR,            -- JSON: GX result summary, example values
    checked_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (load_id, table_name, expectation)
);

-- One row per fetched row that did not enter raw: failed an error-level expectation, held back
-- because its load was blocked, or excluded by the source (a cash line of a holdings file).
CREATE TABLE dq.quarantine (
    load_id         VARCHAR   NOT NULL,
    table_name      VARCHAR   NOT NULL,
    row_key         VARCHAR   NOT NULL,
    expectation     VARCHAR   NOT NULL,
    reason          VARCHAR   NOT NULL,
    row_json        VARCHAR   NOT NULL,
    quarantined_at  TIMESTAMP NOT NULL
);
