package headoffice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A till keeps its journal for a restore of head office: one from a backup
// has lost what the till pushed after it, and the till pushes every entry
// after the restored watermark again (client.pull). Entries head office
// folded longer ago than Options.JournalHold are in every backup it would
// be restored from, so the till may drop them once acknowledged. The feed
// says up to where (wire.Feed.JournalHeld): the till's watermark as it
// stood JournalHold ago, from marks the maintenance runs take (migration
// 0016). A mark is a watermark head office really had at its time, and a
// watermark only moves on, so every backup taken since holds at least the
// entries up to it. The contract is the operator's: never restore from a
// backup older than JournalHold (docs/sync.md "What a till keeps").

// markEvery is the spacing of a till's marks: a till is told a watermark
// from between JournalHold and JournalHold + markEvery ago.
func (s *Server) markEvery() time.Duration { return s.journalHold / 30 }

// markJournals samples every till's watermark at now, unless the till's
// last mark is newer than markEvery or has the same watermark (an idle
// till keeps one row), and drops each till's marks older than the newest
// mark at least JournalHold old: that one is what the feed reads.
func (s *Server) markJournals(ctx context.Context, now time.Time) error {
	if s.journalHold <= 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `INSERT INTO journal_marks (till_id, at, folded_through)
		SELECT t.till_id, $1, t.folded_through FROM tills t
		LEFT JOIN LATERAL (SELECT m.at, m.folded_through FROM journal_marks m
			WHERE m.till_id = t.till_id ORDER BY m.at DESC LIMIT 1) last ON true
		WHERE t.folded_through <> '' AND t.retired_at IS NULL
			AND (last.at IS NULL OR last.at <= $2 AND last.folded_through <> t.folded_through)
		ON CONFLICT DO NOTHING`, now, now.Add(-s.markEvery()))
	if err != nil {
		return fmt.Errorf("mark the tills' watermarks: %w", err)
	}
	_, err = s.db.Exec(ctx, `DELETE FROM journal_marks m WHERE m.at <
		(SELECT max(x.at) FROM journal_marks x WHERE x.till_id = m.till_id AND x.at <= $1)`, now.Add(-s.journalHold))
	if err != nil {
		return fmt.Errorf("drop the tills' old watermark marks: %w", err)
	}
	return nil
}

// journalHeld is the id up to which the till may drop acknowledged
// entries ("" = none yet), read in tx: its newest mark at least
// JournalHold old, never past its watermark now (folded).
func (s *Server) journalHeld(ctx context.Context, tx pgx.Tx, tillID, folded string) (string, error) {
	if s.journalHold <= 0 || folded == "" {
		return "", nil
	}
	var held string
	err := tx.QueryRow(ctx, `SELECT folded_through FROM journal_marks WHERE till_id = $1 AND at <= $2 ORDER BY at DESC LIMIT 1`,
		tillID, s.now().Add(-s.journalHold)).Scan(&held)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the till's journal mark: %w", err)
	}
	return min(held, folded), nil
}
