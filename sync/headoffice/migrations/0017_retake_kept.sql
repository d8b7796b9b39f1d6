-- Entries of ERP's journal export that retake-journal could not take yet:
-- their till is unknown to head office (enrolled since the backup it was
-- restored from). They are taken, as the retake would have, when the till
-- is admitted from its enrolment secret or enrolled again, and by each
-- maintenance run for a till known by then; a run taking all of a till's
-- rows deletes them. body is the exported entry, compact, as the till
-- pushed it.
CREATE TABLE retake_kept (
	till_id text COLLATE "C" NOT NULL,
	id      text COLLATE "C" NOT NULL,
	body    bytea NOT NULL,
	kept_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (till_id, id)
);
