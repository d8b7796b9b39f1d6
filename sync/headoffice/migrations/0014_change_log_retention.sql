-- The change log is kept only as long as the feed needs it (Options.
-- ChangeRetention): each maintenance run marks the oldest transaction then
-- running (every change row of an older one is committed), and a later run
-- deletes the change rows older than the newest mark past the retention.
-- feed_horizon is that mark's oldest xid: a till whose cursor is older may miss
-- deleted changes and is told to load its replica afresh (a feed reset).
CREATE TABLE change_marks (
	at   timestamptz PRIMARY KEY,
	oldest xid8 NOT NULL
);
CREATE TABLE feed_horizon (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	oldest xid8 NOT NULL
);
