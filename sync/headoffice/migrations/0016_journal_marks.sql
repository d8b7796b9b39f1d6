-- Where each till's watermark stood, sampled by the maintenance runs. A
-- till may drop its acknowledged journal entries up to its watermark of
-- Options.JournalHold ago: a backup of head office no older than that holds
-- every one of them, so a restore never asks a till to push one again
-- (the re-push starts after the restored watermark, which is later).
CREATE TABLE journal_marks (
	till_id        text NOT NULL,
	at             timestamptz NOT NULL,
	folded_through text NOT NULL,
	PRIMARY KEY (till_id, at)
);
