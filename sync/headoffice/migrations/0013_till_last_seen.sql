-- When head office last heard from a till (an authenticated push or feed
-- request) and what the till's agent said it was (User-Agent): the tills
-- report and the metrics show the tills silent for long, the first thing
-- to look at in an offline-first fleet, and which build each one runs.
-- A table of its own, no key to tills: a push holds its till's row, and
-- writing these must never wait for it.
CREATE TABLE till_seen (
	till_id      text COLLATE "C" PRIMARY KEY,
	last_seen_at timestamptz NOT NULL,
	last_agent   text NOT NULL DEFAULT ''
);
