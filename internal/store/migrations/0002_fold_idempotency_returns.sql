-- 0002: what 0001 left out.
--  * The money side of returns: withheld_kop (money kept back from a refund
--    for points already spent, deduct_refund policy) and written_off (points
--    the policy let go). amount_kop already carries the roubles a reversal
--    gives back to the points (negative).
--  * Replay protection: one row per recorded sale (by check id) and return
--    (by return id), written in the same transaction as its entries.
--  * An index for the balance query: a card's entries after the replica's
--    watermark (replica_meta 'folded_through:<till id>'), acknowledged or not.

ALTER TABLE journal ADD COLUMN withheld_kop INTEGER NOT NULL DEFAULT 0 CHECK (withheld_kop >= 0);
ALTER TABLE journal ADD COLUMN written_off TEXT NOT NULL DEFAULT '0';

CREATE INDEX journal_card_id ON journal(card_code, id);

-- The append-only trigger must cover the new columns too.
DROP TRIGGER journal_no_rewrite;
CREATE TRIGGER journal_no_rewrite BEFORE UPDATE ON journal
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.check_id IS NOT OLD.check_id
	OR NEW.card_code IS NOT OLD.card_code OR NEW.kind IS NOT OLD.kind
	OR NEW.points IS NOT OLD.points OR NEW.amount_kop IS NOT OLD.amount_kop
	OR NEW.purchase_kop IS NOT OLD.purchase_kop OR NEW.note IS NOT OLD.note
	OR NEW.created_ms IS NOT OLD.created_ms OR NEW.withheld_kop IS NOT OLD.withheld_kop
	OR NEW.written_off IS NOT OLD.written_off OR (OLD.acked = 1 AND NEW.acked = 0)
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;

-- kind 'sale' is keyed by check id, 'return' by return id. digest is the
-- SHA-256 of the entries as built (before ids), so a replay is recognised and
-- a different payload under the same key refused; entry_ids is a JSON array.
CREATE TABLE recorded (
	kind       TEXT NOT NULL CHECK (kind IN ('sale', 'return')),
	key        TEXT NOT NULL,
	check_id   TEXT NOT NULL,
	digest     TEXT NOT NULL,
	entry_ids  TEXT NOT NULL CHECK (json_valid(entry_ids)),
	created_ms INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TRIGGER recorded_no_update BEFORE UPDATE ON recorded
BEGIN
	SELECT RAISE(ABORT, 'recorded sales are append-only');
END;
CREATE TRIGGER recorded_no_delete BEFORE DELETE ON recorded
BEGIN
	SELECT RAISE(ABORT, 'recorded sales are append-only');
END;
