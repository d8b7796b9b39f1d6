-- 0020: journal conflicts paged in first_seen order (GET /v1/erp/conflicts
-- after/limit). The open ones have an index of their own: they are few,
-- the settled ones only grow, and support's default list is the open.
CREATE INDEX journal_conflicts_seen ON journal_conflicts (first_seen, id);
CREATE INDEX journal_conflicts_open ON journal_conflicts (first_seen, id) WHERE settled_at IS NULL;
