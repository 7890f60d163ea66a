-- From here on the registry of datasets (smallcaps/registry.py) declares every core table and mart,
-- and `warehouse.datasets.sync` creates them from it (re-creating a table whose declared shape
-- changed, then rebuilding it from raw). The tables 0001 created by hand are dropped: a warehouse
-- that had them rebuilds them from raw on its next load.

DROP TABLE IF EXISTS core.sessions;
DROP TABLE IF EXISTS core.membership;
DROP TABLE IF EXISTS core.cohorts;
DROP TABLE IF EXISTS core.equity_returns;
DROP TABLE IF EXISTS marts.index_daily;
DROP TABLE IF EXISTS marts.index_records;
DROP TABLE IF EXISTS marts.index_performance;
DROP TABLE IF EXISTS marts.relative_performance;
DROP TABLE IF EXISTS marts.cohort_composition;
DROP TABLE IF EXISTS marts.cohort_performance;
DROP TABLE IF EXISTS marts.sector_daily;
DROP TABLE IF EXISTS marts.headlines;

-- One row per derived dataset: the shape its table was created with (a fingerprint of the
-- registry's DDL) and whether it has been filled from raw since.
CREATE TABLE meta.datasets (
    name         VARCHAR   NOT NULL PRIMARY KEY,
    fingerprint  VARCHAR   NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    is_built     BOOLEAN   NOT NULL,  -- false until a load has derived it from raw
    updated_at   TIMESTAMP,
    load_id      VARCHAR               -- the last load that changed it
);

-- One row per load and derived table that rewrote rows of nights already published: what a
-- published night said changed (a late quarter, a revised bar), and why.
CREATE TABLE meta.restatements (
    load_id      VARCHAR   NOT NULL,
    table_name   VARCHAR   NOT NULL,
    first_date   DATE      NOT NULL,  -- earliest published night whose rows changed
    last_date    DATE      NOT NULL,
    rows         BIGINT    NOT NULL,  -- keys inserted, changed or deleted on published nights
    reason       VARCHAR   NOT NULL,  -- the raw changes of the load that reached these rows
    restated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (load_id, table_name)
);
