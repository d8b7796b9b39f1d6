-- 0006: what folding needs to settle late entries exactly.
--
-- The points expiry (Maintain) took from each lot. A till's entry that spent
-- from the lot before it expired, pushed after the expiry ran, takes its
-- points from here: expiry counted as lapsed points the customer had
-- already spent, and taking them from the card's other lots instead would
-- take them twice. A return taking back an expired lot does the same.
ALTER TABLE lots ADD COLUMN expired numeric NOT NULL DEFAULT 0 CHECK (expired >= 0);

-- A write-off names the entry and check whose fold wrote the debt off and,
-- when the debt was the shortfall of a lot spent twice (two tills offline),
-- that lot. A return that gives points back to the lot — whichever of the
-- two sales it returns — first takes back what the write-off forgave: a row
-- with mode 'returned' and negative points (docs/sync.md, "Debt and the
-- negative-balance policy").
ALTER TABLE debt_writeoffs
	ADD COLUMN check_id text COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN entry_id text COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN lot_id text COLLATE "C" NOT NULL DEFAULT '',
	DROP CONSTRAINT debt_writeoffs_points_check,
	ADD CONSTRAINT debt_writeoffs_points_check CHECK (points <> 0);
CREATE INDEX debt_writeoffs_lot ON debt_writeoffs (card, lot_id) WHERE lot_id <> '';

-- An entry head office refused (why): stored, and on its till's chain so the
-- entries after it fold, but not applied to any card. Support lists them
-- (GET /v1/erp/rejected) and corrects the card if it must.
ALTER TABLE journal ADD COLUMN rejected text NOT NULL DEFAULT '';
CREATE INDEX journal_rejected ON journal (received_at) WHERE rejected <> '';

-- Points a lot spent twice borrowed from the card's other lots to cover its
-- shortfall (positive), and what a return refilling it paid back to them
-- (negative): the return gives the points back to the lots they came from,
-- with their own expiry, not to the lot the till named.
CREATE TABLE lot_borrows (
	id       bigserial PRIMARY KEY,
	card     text COLLATE "C" NOT NULL,
	lot_id   text COLLATE "C" NOT NULL,
	from_lot text COLLATE "C" NOT NULL,
	points   numeric NOT NULL CHECK (points <> 0),
	entry_id text COLLATE "C" NOT NULL
);
CREATE INDEX lot_borrows_lot ON lot_borrows (card, lot_id);
