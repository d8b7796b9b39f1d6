-- 0018: each card's lots that lapsed with points left, by expiry. An entry
-- a till wrote before such a lot lapsed, pushed after the expiry run,
-- spends from it as it would have before the run (what expiry took);
-- ingestion reads them for the cards of a batch's debits, those expiring
-- after the debit. Built like 0010, inside the migration's transaction.
CREATE INDEX lots_lapsed ON lots (card, expires_at) WHERE remaining = 0 AND expired > 0;
