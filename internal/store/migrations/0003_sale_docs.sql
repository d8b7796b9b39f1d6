-- Fiscal documents the till is printing or has printed: a sale or a return,
-- keyed by the till UI's idempotency key. A document is written 'pending'
-- before the printer is touched and 'done' once its journal entries are
-- committed with the fiscal document number; a pending document left by a
-- crash is settled from the printer's own record on the next start.
CREATE TABLE sale_docs (
    id          TEXT PRIMARY KEY,                 -- check id (sale) or return id
    kind        TEXT NOT NULL CHECK (kind IN ('sale', 'return')),
    idem_key    TEXT NOT NULL UNIQUE,
    request_sha TEXT NOT NULL,                    -- SHA-256 of the request: a reused key with another body is refused
    original_id TEXT REFERENCES sale_docs(id),    -- the sale a return is against
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    result      TEXT NOT NULL,                    -- checkout.Result (sale) or checkout.ReturnResult (return), JSON
    receipt     TEXT NOT NULL,                    -- the fiscal receipt, JSON
    checkpoint  TEXT,                             -- fiscal checkpoint saved just before the first printer command
    fd          INTEGER,                          -- fiscal document number
    fp          INTEGER,                          -- fiscal sign
    answer      TEXT,                             -- the API answer, replayed for a retried key
    created_ms  INTEGER NOT NULL,
    done_ms     INTEGER
);
CREATE INDEX sale_docs_original ON sale_docs(original_id) WHERE original_id IS NOT NULL;
CREATE INDEX sale_docs_pending ON sale_docs(state) WHERE state = 'pending';
