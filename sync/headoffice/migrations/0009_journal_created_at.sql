-- 0009: each entry's time on its till (its body's created_at) as a column,
-- indexed: the accruals report reads the entries of its period only, not
-- the whole journal, which is kept forever. Filled from the bodies once,
-- inside the migration's transaction; that rewrites every journal row: plan
-- the upgrade of a large head office for it. A body with \u0000 is read as
-- the report read it.
ALTER TABLE journal ADD COLUMN created_at timestamptz;
UPDATE journal SET created_at = (CASE WHEN strpos(body::text, '\u0000') = 0 THEN body
	ELSE replace(body::text, '\u0000', '\ufffd')::json END ->> 'created_at')::timestamptz;
CREATE INDEX journal_created ON journal (created_at);
