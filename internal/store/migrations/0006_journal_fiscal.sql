-- The fiscal document (number and sign) of the receipt an entry belongs
-- to: the journal ties every fiscalised sale and return to its receipt.
-- NULL for entries without a receipt (corrections, older entries).
ALTER TABLE journal ADD COLUMN fd INTEGER CHECK (fd IS NULL OR fd > 0);
ALTER TABLE journal ADD COLUMN fp INTEGER;

DROP TRIGGER journal_no_rewrite;
CREATE TRIGGER journal_no_rewrite BEFORE UPDATE ON journal
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.check_id IS NOT OLD.check_id
	OR NEW.card_code IS NOT OLD.card_code OR NEW.kind IS NOT OLD.kind
	OR NEW.points IS NOT OLD.points OR NEW.amount_kop IS NOT OLD.amount_kop
	OR NEW.purchase_kop IS NOT OLD.purchase_kop OR NEW.note IS NOT OLD.note
	OR NEW.created_ms IS NOT OLD.created_ms OR NEW.withheld_kop IS NOT OLD.withheld_kop
	OR NEW.written_off IS NOT OLD.written_off OR NEW.fd IS NOT OLD.fd OR NEW.fp IS NOT OLD.fp
	OR (OLD.acked = 1 AND NEW.acked = 0)
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
