package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PruneDocs empties the result, receipt, answer and checkpoint of up to
// limit finished sales created before before, with their returns, in one
// transaction, and says how many documents it emptied (0: none left).
// Those columns are most of a document's bytes. Each emptied row is
// deleted and written again slim under its rowid, not updated: SQLite
// merges the pages a delete leaves underfull, while an update that
// shrinks a row leaves its page as full of nothing as before, never
// reused by newer (higher) rowids. So the pages come free, new sales take
// them, and once sales reach the keeping age the database stops growing
// by them (the file does not shrink: a VACUUM would hold the writer for
// minutes on a year of sales).
//
// A sale goes with all its returns or not at all, and only when each of
// them is finished and old too: a return reads its sale's lines and every
// earlier return of it, so a sale whose return is newer stays whole until
// that return is old as well. The journal is untouched (append-only, and
// the entries are what head office takes); the rows stay, so the sale's
// id, key, fiscal number and sign are still there to say it was kept
// once.
func (s *Store) PruneDocs(ctx context.Context, before time.Time, limit int) (int, error) {
	n, err := s.pruneDocs(ctx, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune documents created before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

func (s *Store) pruneDocs(ctx context.Context, before time.Time, limit int) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// The run's rows are set aside in a temporary table (the writer's own
	// connection; emptied again before commit), deleted, and written back
	// slim from it. The returns' rows point at their sale's meanwhile.
	for _, q := range []string{
		`PRAGMA defer_foreign_keys = ON`,
		`CREATE TEMP TABLE IF NOT EXISTS pruning AS SELECT rowid AS rid, * FROM sale_docs WHERE 0`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, `
		WITH old AS MATERIALIZED (
			SELECT id FROM sale_docs s
			WHERE kind = 'sale' AND pruned_ms IS NULL AND created_ms < ?1 AND state = 'done'
				AND NOT EXISTS (SELECT 1 FROM sale_docs r
					WHERE r.original_id = s.id AND (r.created_ms >= ?1 OR r.state <> 'done'))
			ORDER BY created_ms, id LIMIT ?2) -- one set for both arms below: a sale and its returns go together
		INSERT INTO pruning SELECT rowid, * FROM sale_docs
		WHERE id IN (SELECT id FROM old) OR original_id IN (SELECT id FROM old)`,
		before.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, err
	}
	err = execEach(ctx, tx,
		stmt{`DELETE FROM sale_docs WHERE rowid IN (SELECT rid FROM pruning)`, nil},
		stmt{`INSERT INTO sale_docs(rowid, id, kind, idem_key, request_sha, original_id, state, result, receipt, fd, fp, created_ms, done_ms, pruned_ms)
			SELECT rid, id, kind, idem_key, request_sha, original_id, state, '', '', fd, fp, created_ms, done_ms, ? FROM pruning`, []any{s.now().UnixMilli()}},
		stmt{`DELETE FROM pruning`, nil})
	if err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}

// stmt is a statement of execEach with its arguments.
type stmt struct {
	sql  string
	args []any
}

// execEach runs the statements in tx in order, stopping at the first
// error.
func execEach(ctx context.Context, tx *sql.Tx, stmts ...stmt) error {
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return err
		}
	}
	return nil
}
