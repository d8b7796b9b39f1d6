-- 0001: the replica (head office's data, replaced by imports) and the journal
-- (what this till did to balances, append-only).
-- Times are unix seconds UTC unless the column says _ms; money is kopecks
-- (INTEGER); points are decimal strings (the scale is the program's).

CREATE TABLE replica_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE stores (
	id       TEXT PRIMARY KEY,
	name     TEXT NOT NULL,
	timezone TEXT NOT NULL,
	address  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE product_groups (
	id        TEXT PRIMARY KEY,
	name      TEXT NOT NULL,
	parent_id TEXT,
	segment   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE products (
	id                      TEXT PRIMARY KEY,
	name                    TEXT NOT NULL,
	group_id                TEXT NOT NULL REFERENCES product_groups(id),
	segment                 TEXT NOT NULL DEFAULT '',
	vat                     TEXT NOT NULL,
	tobacco                 INTEGER NOT NULL DEFAULT 0 CHECK (tobacco IN (0, 1)),
	alcohol                 INTEGER NOT NULL DEFAULT 0 CHECK (alcohol IN (0, 1)),
	-- NULL: unknown; under a markup limit the line then takes no points
	-- (the margin cannot be proven: checkout's markup_unknown_cost).
	last_purchase_price_kop INTEGER CHECK (last_purchase_price_kop >= 0)
) WITHOUT ROWID;

CREATE TABLE barcodes (
	code       TEXT PRIMARY KEY,
	product_id TEXT NOT NULL REFERENCES products(id)
) WITHOUT ROWID;

-- Program rules are the engine's JSON (checkout.Program), validated on import:
-- a relational form of a rule set buys nothing, the engine reads it whole.
CREATE TABLE programs (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	body TEXT NOT NULL CHECK (json_valid(body))
) WITHOUT ROWID;

CREATE TABLE promotions (
	id         TEXT PRIMARY KEY,
	program_id TEXT NOT NULL REFERENCES programs(id),
	body       TEXT NOT NULL CHECK (json_valid(body))
) WITHOUT ROWID;

CREATE TABLE card_kinds (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('bonus', 'discount', 'combined', 'referral')),
	program_id TEXT NOT NULL REFERENCES programs(id)
) WITHOUT ROWID;

CREATE TABLE cards (
	id           INTEGER PRIMARY KEY,
	code         TEXT NOT NULL UNIQUE,
	kind_id      TEXT NOT NULL REFERENCES card_kinds(id),
	-- NULL: the card kind's program.
	program_id   TEXT REFERENCES programs(id),
	state        TEXT NOT NULL CHECK (state IN ('issued', 'active', 'blocked')),
	block_reason TEXT NOT NULL DEFAULT '',
	holder       TEXT NOT NULL DEFAULT '',
	-- A negative balance left by returns, as head office knows it (>= 0).
	debt         TEXT NOT NULL DEFAULT '0',
	-- Purchase history as of the replica snapshot. stats_month ('YYYY-MM',
	-- store local time) is the month the *_month counters refer to.
	stats_month              TEXT NOT NULL DEFAULT '',
	purchases_all_time_kop   INTEGER NOT NULL DEFAULT 0,
	purchases_month_kop      INTEGER NOT NULL DEFAULT 0,
	purchases_prev_month_kop INTEGER NOT NULL DEFAULT 0,
	accrued_month            TEXT NOT NULL DEFAULT '0',
	redeemed_month           TEXT NOT NULL DEFAULT '0'
);

-- A card's lots cluster together (WITHOUT ROWID, card first in the key), so
-- loading one card out of millions is one short range scan.
CREATE TABLE lots (
	card_id     INTEGER NOT NULL REFERENCES cards(id),
	lot_id      TEXT NOT NULL,
	points      TEXT NOT NULL,
	remaining   TEXT NOT NULL,
	accrued_at  INTEGER NOT NULL,
	active_from INTEGER NOT NULL,
	expires_at  INTEGER, -- NULL: never
	check_id    TEXT NOT NULL DEFAULT '', -- the check that accrued it
	PRIMARY KEY (card_id, lot_id)
) WITHOUT ROWID;

-- key_id is the 16-bit id a signed QR token carries (driver/scanner/classify).
CREATE TABLE card_keys (
	key_id     INTEGER PRIMARY KEY CHECK (key_id BETWEEN 0 AND 65535),
	public_key BLOB NOT NULL CHECK (length(public_key) = 32),
	valid_from INTEGER NOT NULL,
	valid_to   INTEGER -- NULL: open-ended
);

-- The journal. seq is local append order; id is made on the till and unique
-- forever (till id + time-ordered random part, see journal.go).
CREATE TABLE journal (
	seq          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	check_id     TEXT NOT NULL,
	card_code    TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('accrual', 'redemption', 'reversal', 'correction')),
	points       TEXT NOT NULL,               -- signed change of the balance
	amount_kop   INTEGER NOT NULL DEFAULT 0,  -- roubles paid with points (redemption, restored on reversal)
	purchase_kop INTEGER NOT NULL DEFAULT 0,  -- counted toward the card's purchase history
	note         TEXT NOT NULL DEFAULT '',
	created_ms   INTEGER NOT NULL,
	acked        INTEGER NOT NULL DEFAULT 0 CHECK (acked IN (0, 1)),
	acked_ms     INTEGER
);
CREATE INDEX journal_pending_card ON journal(card_code) WHERE acked = 0;
CREATE INDEX journal_check ON journal(check_id);
CREATE INDEX journal_pending ON journal(seq) WHERE acked = 0;

-- Lots an entry touched: a negative delta consumes from a lot, created = 1
-- makes a new lot (an accrual) with its activation and expiry.
CREATE TABLE journal_lots (
	entry_seq   INTEGER NOT NULL REFERENCES journal(seq),
	lot_id      TEXT NOT NULL,
	delta       TEXT NOT NULL,
	created     INTEGER NOT NULL CHECK (created IN (0, 1)),
	active_from INTEGER,
	expires_at  INTEGER,
	PRIMARY KEY (entry_seq, lot_id)
) WITHOUT ROWID;

-- Append-only, enforced by the database itself: only the sync state may change,
-- and only from pending to acknowledged.
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_no_rewrite BEFORE UPDATE ON journal
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.check_id IS NOT OLD.check_id
	OR NEW.card_code IS NOT OLD.card_code OR NEW.kind IS NOT OLD.kind
	OR NEW.points IS NOT OLD.points OR NEW.amount_kop IS NOT OLD.amount_kop
	OR NEW.purchase_kop IS NOT OLD.purchase_kop OR NEW.note IS NOT OLD.note
	OR NEW.created_ms IS NOT OLD.created_ms OR (OLD.acked = 1 AND NEW.acked = 0)
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_lots_no_update BEFORE UPDATE ON journal_lots
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_lots_no_delete BEFORE DELETE ON journal_lots
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
