-- Head office schema. Points are numeric, money bigint kopecks, times timestamptz.
-- Every change a till must see is a row of "changes" stamped with the writing
-- transaction's xid8; the feed bounds what it has delivered by the oldest
-- transaction still running (pg_snapshot_xmin), so a late commit is never
-- skipped (see feed.go).

-- Catalog records kept whole as the till's replica format has them
-- (section: stores, groups, products, programs, promotions, card_kinds, card_keys).
CREATE TABLE catalog (
	section text NOT NULL,
	id      text NOT NULL,
	body    json NOT NULL,
	PRIMARY KEY (section, id)
);

CREATE TABLE cards (
	code         text PRIMARY KEY,
	kind         text NOT NULL,
	program      text NOT NULL DEFAULT '',
	state        text NOT NULL,
	block_reason text NOT NULL DEFAULT '',
	holder       text NOT NULL DEFAULT '',
	debt         numeric NOT NULL DEFAULT 0 CHECK (debt >= 0),
	history      json NOT NULL DEFAULT '{}'
);

CREATE TABLE lots (
	card        text NOT NULL REFERENCES cards(code),
	lot_id      text NOT NULL,
	points      numeric NOT NULL CHECK (points >= 0),
	remaining   numeric NOT NULL CHECK (remaining >= 0 AND remaining <= points),
	accrued_at  timestamptz NOT NULL,
	active_from timestamptz NOT NULL,
	expires_at  timestamptz,
	check_id    text NOT NULL DEFAULT '',
	PRIMARY KEY (card, lot_id)
);

CREATE TABLE tills (
	till_id        text PRIMARY KEY,
	store_id       text NOT NULL,
	secret_sha256  bytea NOT NULL,
	-- The last of the till's entries folded into lots, along the prev chain.
	folded_through text NOT NULL DEFAULT '',
	enrolled_at    timestamptz NOT NULL DEFAULT now()
);

-- Every entry ever received, unique forever by id. seq orders the export
-- within one transaction; xid bounds it across transactions.
CREATE TABLE journal (
	id           text PRIMARY KEY,
	seq          bigserial NOT NULL UNIQUE,
	xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
	till_id      text NOT NULL,
	prev_id      text NOT NULL DEFAULT '',
	card_code    text NOT NULL,
	kind         text NOT NULL,
	points       numeric NOT NULL,
	body         json NOT NULL,
	digest       bytea NOT NULL,
	folded       boolean NOT NULL DEFAULT false,
	received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_unfolded ON journal (till_id) WHERE NOT folded;
CREATE INDEX journal_xid ON journal (xid, seq);

CREATE TABLE changes (
	seq     bigserial PRIMARY KEY,
	xid     xid8 NOT NULL DEFAULT pg_current_xact_id(),
	section text NOT NULL,
	key     text NOT NULL
);
CREATE INDEX changes_xid ON changes (xid);

-- A balance driven below zero while folding (offline spending on several
-- tills): recorded and flagged for the report.
CREATE TABLE overdrafts (
	id        bigserial PRIMARY KEY,
	card      text NOT NULL,
	till_id   text NOT NULL,
	entry_id  text NOT NULL,
	points    numeric NOT NULL CHECK (points > 0),
	at        timestamptz NOT NULL DEFAULT now(),
	UNIQUE (entry_id, card)
);
