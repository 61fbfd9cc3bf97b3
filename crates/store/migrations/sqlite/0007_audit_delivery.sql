-- Where each consumer of the live audit stream stands: the last record it acknowledged
-- (`cursor_seq`, delivered in seq order), and which replica delivers now (one at a time: a lease
-- that another replica takes over once it runs out).
CREATE TABLE audit_delivery (
    sink            TEXT PRIMARY KEY,
    cursor_seq      INTEGER NOT NULL DEFAULT 0,
    delivered_at    TEXT,
    leased_by       TEXT,
    lease_until     TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_failure_at TEXT
);
