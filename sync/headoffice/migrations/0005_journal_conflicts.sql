-- 0005: journal conflicts. A till's entry whose id head office holds with
-- other content is answered "conflict" and stays on the till; its copy is
-- kept here so support can compare both (GET /v1/erp/conflicts) and
-- settle it (POST /v1/erp/conflicts/{id}): keeping head office's copy
-- makes the till's copy a duplicate, which the till then acknowledges.
CREATE TABLE journal_conflicts (
	id          text COLLATE "C" PRIMARY KEY,
	till_id     text COLLATE "C" NOT NULL,
	body        json NOT NULL,     -- the till's copy, canonical
	digest      bytea NOT NULL,
	first_seen  timestamptz NOT NULL DEFAULT now(),
	last_seen   timestamptz NOT NULL DEFAULT now(),
	settled_at  timestamptz,
	reason      text NOT NULL DEFAULT ''
);
