-- When head office last heard from a till (an authenticated push or feed
-- request) and what the till's agent said it was (User-Agent): the tills
-- report and the metrics show the tills silent for long, the first thing
-- to look at in an offline-first fleet, and which build each one runs.
ALTER TABLE tills ADD COLUMN last_seen_at timestamptz, ADD COLUMN last_agent text NOT NULL DEFAULT '';
