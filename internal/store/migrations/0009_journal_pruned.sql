-- Acknowledged entries may go once head office's backups all hold them
-- (sync_state 'journal_held', from the feed) and the till keeps no document
-- of their check (store.PruneJournal). An entry head office has not
-- acknowledged can still never be deleted, nor its lots.
DROP TRIGGER journal_no_delete;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
WHEN OLD.acked = 0
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only: entry not acknowledged');
END;
DROP TRIGGER journal_lots_no_delete;
CREATE TRIGGER journal_lots_no_delete BEFORE DELETE ON journal_lots
WHEN (SELECT acked FROM journal WHERE seq = OLD.entry_seq) IS NOT 1
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only: entry not acknowledged');
END;
