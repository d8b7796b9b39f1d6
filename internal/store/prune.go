package store

import (
	"context"
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
	rows, err := tx.QueryContext(ctx, `
		WITH old AS MATERIALIZED (
			SELECT id FROM sale_docs s
			WHERE kind = 'sale' AND pruned_ms IS NULL AND created_ms < ?1 AND state = 'done'
				AND NOT EXISTS (SELECT 1 FROM sale_docs r
					WHERE r.original_id = s.id AND (r.created_ms >= ?1 OR r.state <> 'done'))
			ORDER BY created_ms, id LIMIT ?2) -- one set for both arms below: a sale and its returns go together
		SELECT rowid, id, kind, idem_key, request_sha, original_id, fd, fp, created_ms, done_ms FROM sale_docs
		WHERE id IN (SELECT id FROM old) OR original_id IN (SELECT id FROM old)`,
		before.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	type slim struct {
		rowid                           int64
		id, kind, key, sha              string
		original, fd, fp, created, done any
	}
	var docs []slim
	for rows.Next() {
		var d slim
		if err := rows.Scan(&d.rowid, &d.id, &d.kind, &d.key, &d.sha, &d.original, &d.fd, &d.fp, &d.created, &d.done); err != nil {
			rows.Close()
			return 0, err
		}
		docs = append(docs, d)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(docs) == 0 {
		return 0, nil
	}
	// The returns' rows point at their sale's while both are rewritten.
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return 0, err
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM sale_docs WHERE rowid = ?`)
	if err != nil {
		return 0, err
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO sale_docs(rowid, id, kind, idem_key, request_sha, original_id, state,
		result, receipt, fd, fp, created_ms, done_ms, pruned_ms) VALUES (?, ?, ?, ?, ?, ?, 'done', '', '', ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	for _, d := range docs {
		if _, err := del.ExecContext(ctx, d.rowid); err != nil {
			return 0, fmt.Errorf("document %s: %w", d.id, err)
		}
	}
	pruned := s.now().UnixMilli()
	for _, d := range docs {
		if _, err := ins.ExecContext(ctx, d.rowid, d.id, d.kind, d.key, d.sha, d.original, d.fd, d.fp, d.created, d.done, pruned); err != nil {
			return 0, fmt.Errorf("document %s: %w", d.id, err)
		}
	}
	return len(docs), tx.Commit()
}
