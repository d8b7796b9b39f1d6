-- 0004: the sync loop's own state: the replica feed cursor (where the next
-- pull starts) and the offline limits head office publishes. Kept apart from
-- replica_meta, which only an import writes.
CREATE TABLE sync_state (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
