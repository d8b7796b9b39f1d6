package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// journalHeldKey holds the id before which head office lets this till drop
// its acknowledged entries (wire.Feed.JournalHeld); no row: keep them all.
const journalHeldKey = "journal_held"

const (
	// journalPrunedKey counts the entries PruneJournal has deleted, ever;
	// journalPrunedThroughKey is the last of them.
	journalPrunedKey        = "journal_pruned"
	journalPrunedThroughKey = "journal_pruned_through"
	// journalLostKey holds head office's watermark ("after") as it was
	// found behind entries the till had dropped (SetJournalLost).
	journalLostKey = "journal_lost"
)

// JournalKept is what the till's status says of the journal kept.
type JournalKept struct {
	// HeldBefore: head office holds this till's entries before this id,
	// and the till drops those past its keeping age ("": it keeps all).
	HeldBefore string `json:"held_before,omitempty"`
	// Pruned counts the entries dropped so far, PrunedThrough the last.
	Pruned        int64  `json:"pruned_entries"`
	PrunedThrough string `json:"pruned_through,omitempty"`
	// Lost: head office's watermark is behind entries the till dropped,
	// which only a restore of head office from a backup older than its
	// -journal-hold does (the replica's watermark is, or the sync loop
	// found it so: SetJournalLost). The entries after FoldedThrough
	// through PrunedThrough are then gone from both, and head office
	// cannot fold past them (the entry after them names the last for its
	// predecessor, PendingChain): it needs them back (headoffice
	// retake-journal, from ERP's copy of its journal export).
	Lost          bool   `json:"lost,omitempty"`
	FoldedThrough string `json:"folded_through,omitempty"` // set with Lost
}

// SetJournalLost records that head office's watermark, folded, is behind
// the entries this till dropped (lost), or clears the record (!lost).
func (s *Store) SetJournalLost(ctx context.Context, folded string, lost bool) error {
	if !lost {
		if _, err := s.w.ExecContext(ctx, `DELETE FROM sync_state WHERE key = ?`, journalLostKey); err != nil {
			return fmt.Errorf("store %s: clear the journal lost: %w", s.path, err)
		}
		return nil
	}
	b, err := json.Marshal(repushState{After: folded})
	if err != nil {
		return err
	}
	return s.SetSyncState(ctx, journalLostKey, string(b))
}

// JournalKept reads what head office lets go and how much went.
func (s *Store) JournalKept(ctx context.Context) (JournalKept, error) {
	var k JournalKept
	var wm, lost string
	err := s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT value FROM sync_state WHERE key = ?1), ''),
		coalesce((SELECT CAST(value AS INTEGER) FROM sync_state WHERE key = ?2), 0),
		coalesce((SELECT value FROM sync_state WHERE key = ?3), ''),
		coalesce((SELECT value FROM replica_meta WHERE key = ?4), ''),
		coalesce((SELECT value FROM sync_state WHERE key = ?5), '')`,
		journalHeldKey, journalPrunedKey, journalPrunedThroughKey, foldedKey(s.tillID), journalLostKey).
		Scan(&k.HeldBefore, &k.Pruned, &k.PrunedThrough, &wm, &lost)
	if err != nil {
		return k, fmt.Errorf("store %s: read the journal kept: %w", s.path, err)
	}
	switch {
	case lost != "":
		var st repushState
		if err := json.Unmarshal([]byte(lost), &st); err != nil {
			return k, fmt.Errorf("store %s: saved journal lost %q: %w", s.path, lost, err)
		}
		k.Lost, k.FoldedThrough = true, st.After
	case k.PrunedThrough > wm:
		k.Lost, k.FoldedThrough = true, wm
	}
	return k, nil
}

// SetJournalHeld saves what the last feed said about the journal kept:
// acknowledged entries with ids before held may go ("" = keep them all,
// which a feed saying nothing means: an older head office, or one that
// wants every entry kept).
func (s *Store) SetJournalHeld(ctx context.Context, held string) error {
	// Every pull says it again: the writer is taken only for a change.
	if was, err := s.SyncState(ctx, journalHeldKey); err != nil || was == held {
		return err
	}
	if held == "" {
		if _, err := s.w.ExecContext(ctx, `DELETE FROM sync_state WHERE key = ?`, journalHeldKey); err != nil {
			return fmt.Errorf("store %s: forget the journal held: %w", s.path, err)
		}
		return nil
	}
	rest, ok := strings.CutPrefix(held, s.tillID+"-")
	if _, _, _, err := decodeULID(rest); !ok || err != nil {
		return fmt.Errorf("store %s: journal held before %q: not a journal id of till %s", s.path, held, s.tillID)
	}
	return s.SetSyncState(ctx, journalHeldKey, held)
}

// PruneJournal deletes up to limit acknowledged journal entries, with the
// lots they touched, and says how many it deleted (0: none left). An entry
// goes only when every one of these holds:
//   - head office's backups all hold it: its id is before the feed's
//     journal_held (SetJournalHeld), so no restore of head office asks for
//     it again (a re-push starts after the restored watermark);
//   - the replica has folded it (at or before its watermark): balances
//     count only the entries after the watermark;
//   - it was made before before (the till's keeping age, the same as its
//     documents') and no document of its check is kept: a return reads
//     the entries of its sale;
//   - every lot it created is in the replica (used up or not: a lot, once
//     imported, stays): a return giving points back to a lot the replica
//     never had (created and spent between two feeds) reads the lot from
//     the entry that created it (ownLot);
//   - it is before the entry just before the first unacknowledged one, and
//     not the last entry: a pushed entry names its predecessor, the
//     largest id below it, and head office's digest covers that name, so
//     an entry sent again after its predecessor went would conflict with
//     the copy head office has; ids and seqs go on from the last;
//   - no re-push is under way.
//
// The replay guard of each sale and return (recorded) stays, so a retried
// sale is still recognised. Head office has every entry: the export and
// the reports read from there.
func (s *Store) PruneJournal(ctx context.Context, before time.Time, limit int) (int, error) {
	n, err := s.pruneJournal(ctx, before, limit)
	if err != nil {
		return 0, fmt.Errorf("store %s: prune the journal before %s: %w", s.path, before.Format(time.RFC3339), err)
	}
	return n, nil
}

func (s *Store) pruneJournal(ctx context.Context, before time.Time, limit int) (int, error) {
	held, err := s.SyncState(ctx, journalHeldKey)
	if err != nil || held == "" {
		return 0, err
	}
	if _, repushing, err := s.Repush(ctx); err != nil || repushing {
		return 0, err
	}
	wm, err := s.FoldedThrough(ctx)
	if err != nil || wm == "" {
		return 0, err
	}
	lo := s.tillID + "-"
	// Ids start with their millisecond, so the age bounds the id range
	// read as well (an id is never older than its entry: the generator
	// only counts up).
	hi := min(held, lo+encodeULID(uint64(max(before.UnixMilli(), 0)), 0, 0), wm+"\x00")
	if hi <= lo {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS journal_pruning (seq INTEGER PRIMARY KEY)`); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `WITH unacked(seq) AS (SELECT min(seq) FROM journal WHERE acked = 0)
		INSERT INTO journal_pruning
		SELECT j.seq FROM journal j
		WHERE j.id > ?1 AND j.id < ?2 AND j.acked = 1 AND j.created_ms < ?3
			AND j.seq < coalesce(
				(SELECT max(p.seq) FROM journal p WHERE p.seq < (SELECT seq FROM unacked)),
				(SELECT seq FROM unacked),
				(SELECT max(seq) FROM journal))
			AND NOT EXISTS (SELECT 1 FROM sale_docs d WHERE d.id = j.check_id AND d.pruned_ms IS NULL)
			AND NOT EXISTS (SELECT 1 FROM journal_lots jl WHERE jl.entry_seq = j.seq AND jl.created = 1
				AND NOT EXISTS (SELECT 1 FROM cards c JOIN lots l ON l.card_id = c.id WHERE c.code = j.card_code AND l.lot_id = jl.lot_id))
		ORDER BY j.id LIMIT ?4`, lo, hi, before.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, err
	}
	err = execEach(ctx, tx,
		stmt{`INSERT INTO sync_state(key, value) SELECT ?, max(j.id) FROM journal j WHERE j.seq IN (SELECT seq FROM journal_pruning)
			ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)`, []any{journalPrunedThroughKey}},
		stmt{`DELETE FROM journal_lots WHERE entry_seq IN (SELECT seq FROM journal_pruning)`, nil},
		stmt{`DELETE FROM journal WHERE seq IN (SELECT seq FROM journal_pruning)`, nil},
		stmt{`DELETE FROM journal_pruning`, nil},
		stmt{`INSERT INTO sync_state(key, value) VALUES (?1, ?2)
			ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?2`, []any{journalPrunedKey, n}})
	if err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}
