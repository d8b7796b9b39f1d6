-- 0002: which cards a store's tills receive, the programs' negative-balance
-- policy applied to debt folding creates, and the feed epoch of each till.

-- A store's card scope: 'all' (every card, the default when a store has no
-- row) or 'home' (only the cards in card_stores for that store).
CREATE TABLE store_card_scope (
	store_id text PRIMARY KEY,
	scope    text NOT NULL CHECK (scope IN ('all', 'home'))
);

-- The cards that are home to a store (assigned by ERP). A new row also
-- writes a change of section 'home/<store>' for the card, so the store's
-- tills receive the card, with all its lots, in their next delta.
CREATE TABLE card_stores (
	store_id    text NOT NULL,
	card        text NOT NULL REFERENCES cards(code),
	assigned_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (store_id, card)
);

-- Debt that a program's negative_balance policy did not let a card keep
-- (see debt_policy below and docs/sync.md, "Debt and the negative-balance
-- policy").
CREATE TABLE debt_writeoffs (
	id      bigserial PRIMARY KEY,
	card    text NOT NULL,
	program text NOT NULL,
	mode    text NOT NULL,
	points  numeric NOT NULL CHECK (points > 0),
	at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX debt_writeoffs_card ON debt_writeoffs (card);

-- When folding a till's entries raises a card's debt, the card's program
-- says how much of it the card may keep: 'allow' all of it, 'limit' up to
-- the policy's limit, 'forbid' (or no mode) and 'deduct_refund' none. The
-- rest is written off here, in the same transaction, and recorded. A debt
-- the card already had above its floor is never written off by a later
-- change (only the increase is capped). Corrections switch the policy off
-- for their transaction (headoffice.debt_policy = 'off'): support's
-- deduction is deliberate. A card whose program head office does not know
-- keeps its debt.
CREATE FUNCTION debt_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	prog  text;
	mode  text;
	lim   numeric;
	keep  numeric;
	extra numeric;
BEGIN
	IF current_setting('headoffice.debt_policy', true) = 'off' THEN
		RETURN NEW;
	END IF;
	prog := NEW.program;
	IF prog = '' THEN
		SELECT body->>'program' INTO prog FROM catalog WHERE section = 'card_kinds' AND id = NEW.kind;
	END IF;
	SELECT coalesce(body->'negative_balance'->>'mode', ''), coalesce(body->'negative_balance'->>'limit', '0')::numeric
		INTO mode, lim FROM catalog WHERE section = 'programs' AND id = prog;
	IF NOT FOUND OR mode = 'allow' THEN
		RETURN NEW;
	END IF;
	keep := CASE WHEN mode = 'limit' THEN lim ELSE 0 END;
	extra := NEW.debt - greatest(keep, OLD.debt);
	IF extra > 0 THEN
		NEW.debt := NEW.debt - extra;
		INSERT INTO debt_writeoffs (card, program, mode, points)
			VALUES (NEW.code, prog, CASE WHEN mode = '' THEN 'forbid' ELSE mode END, extra);
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER cards_debt_policy BEFORE UPDATE OF debt ON cards
	FOR EACH ROW WHEN (NEW.debt > OLD.debt) EXECUTE FUNCTION debt_policy();

-- A till's feed epoch: ERP bumps it to make the till drop its cursor and
-- load the replica afresh (head office restored from a backup, whose xids
-- no longer match the cursors tills hold).
ALTER TABLE tills ADD COLUMN feed_epoch int NOT NULL DEFAULT 0;
