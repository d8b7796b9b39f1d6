-- 0007: returns are checked against their sale. A till's reversal may give
-- back to a lot no more than the redemptions of its check took from that lot,
-- less what the check's earlier returns gave back (docs/sync.md, "Returns
-- are checked against their sale"). The check of each redemption and
-- reversal is a column, indexed for those two kinds only: the other entries
-- are never looked up by check. Filling it rewrites the journal's
-- redemption and reversal rows once (in the benchmark's mix a fifth of the
-- journal), inside the migration's transaction: plan the upgrade of a large
-- head office for it. Without it, returns of sales folded before the
-- upgrade would be refused.
ALTER TABLE journal ADD COLUMN check_id text COLLATE "C" NOT NULL DEFAULT '';
UPDATE journal SET check_id = coalesce(body->>'check_id', '') WHERE kind IN ('redemption', 'reversal');
CREATE INDEX journal_check ON journal (check_id) WHERE kind IN ('redemption', 'reversal');

-- An entry folded while head office did not hold its card was applied to no
-- card; the accruals report counts it apart (unknown_cards) even once ERP
-- imports the card, and a return of it gives nothing back (returns.go).
-- Entries folded before this migration are told by whether the card is there
-- now: one whose card ERP imported since cannot be told apart.
ALTER TABLE journal ADD COLUMN no_card boolean NOT NULL DEFAULT false;
UPDATE journal j SET no_card = true
	WHERE j.folded AND j.rejected = '' AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.code = j.card_code);
