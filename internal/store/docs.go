package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// DocKind is what a fiscal document does.
type DocKind string

const (
	DocSale   DocKind = "sale"
	DocReturn DocKind = "return"
)

// DocState is where a document is in the sale flow.
type DocState string

const (
	// DocPending: written before the printer is touched; its outcome is
	// unknown until the receipt is closed or the printer is asked.
	DocPending DocState = "pending"
	// DocDone: fiscalised and journaled; Answer is replayed for a retry.
	DocDone DocState = "done"
)

// Doc is one sale or return the till prints (table sale_docs). The store
// keeps the engine result and the receipt as the JSON the sale flow gave it,
// so it needs to know neither the fiscal model nor the API.
type Doc struct {
	ID         string
	Kind       DocKind
	IdemKey    string
	RequestSHA string
	OriginalID string // returns: the sale
	State      DocState
	Result     []byte // checkout.Result or checkout.ReturnResult
	Receipt    []byte
	Checkpoint []byte // nil until the printer is about to be touched
	FD, FP     uint32
	Answer     []byte
	CreatedMS  int64
	DoneMS     int64
	// PrunedMS is when PruneDocs emptied Result, Receipt, Answer and
	// Checkpoint (0: kept whole).
	PrunedMS int64
}

// ErrDocExists is returned by BeginDoc when the idempotency key or the id is
// taken; the existing document is returned with it.
var ErrDocExists = errors.New("document already exists")

// ErrNoDoc is returned for an unknown document.
var ErrNoDoc = errors.New("no such document")

const docColumns = `id, kind, idem_key, request_sha, COALESCE(original_id, ''), state, result, receipt,
	checkpoint, COALESCE(fd, 0), COALESCE(fp, 0), answer, created_ms, COALESCE(done_ms, 0), COALESCE(pruned_ms, 0)`

func scanDoc(row interface{ Scan(...any) error }) (Doc, error) {
	var d Doc
	var cp sql.NullString
	err := row.Scan(&d.ID, &d.Kind, &d.IdemKey, &d.RequestSHA, &d.OriginalID, &d.State, &d.Result, &d.Receipt,
		&cp, &d.FD, &d.FP, &d.Answer, &d.CreatedMS, &d.DoneMS, &d.PrunedMS)
	if err != nil {
		return d, err
	}
	if cp.Valid {
		d.Checkpoint = []byte(cp.String)
	}
	return d, unpackDocColumns(&d)
}

// BeginDoc writes d as pending, durably, in its own transaction. If its
// idempotency key or id is already there, it returns that document and
// ErrDocExists and writes nothing.
func (s *Store) BeginDoc(ctx context.Context, d Doc) (Doc, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Doc{}, fmt.Errorf("begin document %s: %w", d.ID, err)
	}
	defer tx.Rollback()
	old, err := scanDoc(tx.QueryRowContext(ctx, `SELECT `+docColumns+` FROM sale_docs WHERE idem_key = ? OR id = ?`, d.IdemKey, d.ID))
	switch {
	case err == nil:
		return old, ErrDocExists
	case !errors.Is(err, sql.ErrNoRows):
		return Doc{}, fmt.Errorf("look up document %s: %w", d.ID, err)
	}
	d.State = DocPending
	d.CreatedMS = s.now().UnixMilli()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sale_docs(id, kind, idem_key, request_sha, original_id, state, result, receipt, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Kind, d.IdemKey, d.RequestSHA, nullStr(d.OriginalID), d.State, packDoc(d.Result), packDoc(d.Receipt), d.CreatedMS); err != nil {
		return Doc{}, fmt.Errorf("insert document %s: %w", d.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return Doc{}, fmt.Errorf("commit document %s: %w", d.ID, err)
	}
	return d, nil
}

// SaveCheckpoint records the fiscal checkpoint of a pending document; it is
// durable when it returns, before the first byte goes to the printer.
func (s *Store) SaveCheckpoint(ctx context.Context, id string, cp []byte) error {
	return s.updateDoc(ctx, "save checkpoint of", id, `UPDATE sale_docs SET checkpoint = ? WHERE id = ? AND state = 'pending'`, string(cp), id)
}

// FinishDoc marks a document done with its fiscal number and sign and the
// answer a retry gets. Its journal entries are recorded before (RecordSale
// and RecordReturn are idempotent, so a crash between the two is settled by
// recording again).
func (s *Store) FinishDoc(ctx context.Context, id string, fd, fp uint32, answer []byte) error {
	return s.updateDoc(ctx, "finish", id, `UPDATE sale_docs SET state = 'done', fd = ?, fp = ?, answer = ?, done_ms = ? WHERE id = ? AND state = 'pending'`,
		fd, fp, packDoc(answer), s.now().UnixMilli(), id)
}

// DropDoc deletes a pending document that was never fiscalised: the printer
// refused it or has no trace of it, so nothing of it may remain.
func (s *Store) DropDoc(ctx context.Context, id string) error {
	return s.updateDoc(ctx, "drop", id, `DELETE FROM sale_docs WHERE id = ? AND state = 'pending'`, id)
}

func (s *Store) updateDoc(ctx context.Context, op, id, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s document %s: %w", op, id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%s document %s: %w (or not pending)", op, id, ErrNoDoc)
	}
	return nil
}

// DocByID returns one document.
func (s *Store) DocByID(ctx context.Context, id string) (Doc, error) {
	d, err := scanDoc(s.r.QueryRowContext(ctx, `SELECT `+docColumns+` FROM sale_docs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Doc{}, fmt.Errorf("document %s: %w", id, ErrNoDoc)
	}
	return d, err
}

// DocByKey returns the document of an idempotency key.
func (s *Store) DocByKey(ctx context.Context, key string) (Doc, error) {
	d, err := scanDoc(s.r.QueryRowContext(ctx, `SELECT `+docColumns+` FROM sale_docs WHERE idem_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Doc{}, fmt.Errorf("document with key %q: %w", key, ErrNoDoc)
	}
	return d, err
}

// PendingDocs lists the documents whose outcome is not settled, oldest first.
func (s *Store) PendingDocs(ctx context.Context) ([]Doc, error) {
	return s.docs(ctx, `state = 'pending' ORDER BY created_ms, id`)
}

// ReturnsOf lists the finished returns against a sale, oldest first.
func (s *Store) ReturnsOf(ctx context.Context, saleID string) ([]Doc, error) {
	return s.docs(ctx, `original_id = ? AND kind = 'return' AND state = 'done' ORDER BY created_ms, id`, saleID)
}

// DocCounts counts documents by kind and state ("sale_done"), for status
// and metrics, and those of them pruned ("sale_pruned").
func (s *Store) DocCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, state, pruned_ms IS NOT NULL, COUNT(*) FROM sale_docs GROUP BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("count documents: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind, state string
		var pruned bool
		var n int
		if err := rows.Scan(&kind, &state, &pruned, &n); err != nil {
			return nil, err
		}
		out[kind+"_"+state] += n
		if pruned {
			out[kind+"_pruned"] += n
		}
	}
	return out, rows.Err()
}

func (s *Store) docs(ctx context.Context, where string, args ...any) ([]Doc, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+docColumns+` FROM sale_docs WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list documents: %w", err)
	}
	defer rows.Close()
	var out []Doc
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, fmt.Errorf("list documents: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Backlog counts the journal entries head office has not acknowledged yet.
func (s *Store) Backlog(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal WHERE acked = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count journal backlog: %w", err)
	}
	return n, nil
}
