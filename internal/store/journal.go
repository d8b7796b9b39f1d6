package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Kind is what a journal entry did to a card's balance.
type Kind string

const (
	KindAccrual    Kind = "accrual"    // points earned; creates a lot
	KindRedemption Kind = "redemption" // points spent; consumes lots
	KindReversal   Kind = "reversal"   // a return undoing (part of) an accrual or redemption
	KindCorrection Kind = "correction" // a manual fix by support
)

func (k Kind) valid() bool {
	switch k {
	case KindAccrual, KindRedemption, KindReversal, KindCorrection:
		return true
	}
	return false
}

// LotChange is one lot an entry touched. A redemption consumes (negative
// Delta) from existing lots; an accrual creates a lot (Create, positive
// Delta) that becomes spendable at ActiveFrom and expires at ExpiresAt (zero:
// never). Reversals restore consumed lots (positive Delta) or take back a
// created lot (negative Delta).
type LotChange struct {
	LotID      string          `json:"lot_id"`
	Delta      decimal.Decimal `json:"delta"`
	Create     bool            `json:"create,omitempty"`
	ActiveFrom time.Time       `json:"active_from,omitzero"`
	ExpiresAt  time.Time       `json:"expires_at,omitzero"`
}

// Entry is one journal record. ID and CreatedAt are set by Append.
type Entry struct {
	ID       string `json:"id"`
	CheckID  string `json:"check_id"`
	CardCode string `json:"card_code"`
	Kind     Kind   `json:"kind"`
	// Points is the signed change of the card's balance; it must equal the
	// sum of the lot deltas.
	Points decimal.Decimal `json:"points"`
	// AmountKop is the roubles (in kopecks) paid with points: positive on a
	// redemption, negative on the reversal that gives them back.
	AmountKop int64 `json:"amount_kop"`
	// PurchaseKop is the money counted toward the card's purchase history
	// (tiers, cumulative discounts): the check's sum on the card's accrual
	// entry (write an accrual of 0 points if nothing was earned), negative on
	// a return's reversal.
	PurchaseKop int64 `json:"purchase_kop"`
	// WithheldKop is money kept back from a return's refund for points the
	// card had already spent (deduct_refund policy); WrittenOff the points a
	// return could not take back and the policy let go. Neither changes the
	// balance; both are on the reversal so head office sees the whole return.
	WithheldKop int64           `json:"withheld_kop,omitempty"`
	WrittenOff  decimal.Decimal `json:"written_off,omitzero"`
	Note        string          `json:"note,omitempty"`
	// FD and FP are the fiscal document number and sign of the receipt the
	// entry belongs to (0: none, e.g. a correction).
	FD        uint32      `json:"fd,omitempty"`
	FP        uint32      `json:"fp,omitempty"`
	Lots      []LotChange `json:"lots,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	Acked     bool        `json:"acked"`
}

// ErrEmptySale is returned by Append for a sale without entries.
var ErrEmptySale = errors.New("sale has no journal entries")

// InUTC is e with every time in UTC and the till-local acked flag
// cleared: its content as head office stores it, the same whatever zone
// the till read it back in. Its lots are a copy.
func (e Entry) InUTC() Entry {
	e.Acked = false
	e.CreatedAt = e.CreatedAt.UTC()
	if len(e.Lots) > 0 {
		lots := make([]LotChange, len(e.Lots))
		for i, l := range e.Lots {
			l.ActiveFrom, l.ExpiresAt = l.ActiveFrom.UTC(), l.ExpiresAt.UTC()
			lots[i] = l
		}
		e.Lots = lots
	}
	return e
}

func (e *Entry) validate() error {
	if e.CheckID == "" {
		return errors.New("empty check id")
	}
	if e.CardCode == "" {
		return errors.New("empty card code")
	}
	if !e.Kind.valid() {
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	if e.WithheldKop < 0 || e.WrittenOff.IsNegative() {
		return fmt.Errorf("negative withheld %d kop or written-off %s points", e.WithheldKop, e.WrittenOff)
	}
	sum := decimal.Zero
	seen := map[string]bool{}
	for _, l := range e.Lots {
		if l.LotID == "" {
			return errors.New("lot change with empty lot id")
		}
		if seen[l.LotID] {
			return fmt.Errorf("lot %s touched twice", l.LotID)
		}
		seen[l.LotID] = true
		if l.Create && (l.Delta.Sign() <= 0 || l.ActiveFrom.IsZero()) {
			return fmt.Errorf("created lot %s needs a positive delta and active_from", l.LotID)
		}
		sum = sum.Add(l.Delta)
	}
	if len(e.Lots) > 0 && !sum.Equal(e.Points) {
		return fmt.Errorf("points %s differ from the sum of lot deltas %s", e.Points, sum)
	}
	return nil
}

// Append writes the entries of one sale (or one return) in a single
// transaction: all of them are durable when it returns nil (synchronous=FULL),
// none of them otherwise. It assigns and returns the ids; a created lot with
// an empty LotID gets its entry's id. RecordSale and RecordReturn build the
// entries from the engine's results.
func (s *Store) Append(ctx context.Context, entries []Entry) ([]string, error) {
	if len(entries) == 0 {
		return nil, ErrEmptySale
	}
	if err := s.prepareEntries(entries); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append journal (check %s): begin: %w", entries[0].CheckID, err)
	}
	defer tx.Rollback()
	ids, err := appendTx(ctx, tx, entries)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append journal (check %s): commit: %w", entries[0].CheckID, err)
	}
	return ids, nil
}

// prepareEntries assigns ids, times and created lot ids, and validates.
func (s *Store) prepareEntries(entries []Entry) error {
	now := s.now()
	for i := range entries {
		e := &entries[i]
		e.ID = s.ids.next()
		e.CreatedAt = now
		n := 0
		for j := range e.Lots {
			if e.Lots[j].Create && e.Lots[j].LotID == "" {
				// The entry's id names its lot; a second lot of one entry
				// gets "/2", and so on.
				if n++; n == 1 {
					e.Lots[j].LotID = e.ID
				} else {
					e.Lots[j].LotID = fmt.Sprintf("%s/%d", e.ID, n)
				}
			}
		}
		if err := e.validate(); err != nil {
			return fmt.Errorf("append journal entry %d of check %s (card %s): %w", i, e.CheckID, e.CardCode, err)
		}
	}
	return nil
}

// appendTx inserts prepared entries inside tx.
func appendTx(ctx context.Context, tx *sql.Tx, entries []Entry) ([]string, error) {
	insE, err := tx.PrepareContext(ctx, `INSERT INTO journal
		(id, check_id, card_code, kind, points, amount_kop, purchase_kop, withheld_kop, written_off, note, created_ms, fd, fp)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("append journal: %w", err)
	}
	defer insE.Close()
	insL, err := tx.PrepareContext(ctx, `INSERT INTO journal_lots
		(entry_seq, lot_id, delta, created, active_from, expires_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("append journal: %w", err)
	}
	defer insL.Close()
	ids := make([]string, len(entries))
	for i, e := range entries {
		res, err := insE.ExecContext(ctx, e.ID, e.CheckID, e.CardCode, string(e.Kind), e.Points.String(),
			e.AmountKop, e.PurchaseKop, e.WithheldKop, e.WrittenOff.String(), e.Note, e.CreatedAt.UnixMilli(),
			sql.NullInt64{Int64: int64(e.FD), Valid: e.FD != 0}, sql.NullInt64{Int64: int64(e.FP), Valid: e.FD != 0})
		if err != nil {
			return nil, fmt.Errorf("append journal entry %s (check %s): %w", e.ID, e.CheckID, err)
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("append journal entry %s: %w", e.ID, err)
		}
		for _, l := range e.Lots {
			if _, err := insL.ExecContext(ctx, seq, l.LotID, l.Delta.String(), l.Create,
				nullUnix(l.ActiveFrom), nullUnix(l.ExpiresAt)); err != nil {
				return nil, fmt.Errorf("append journal entry %s lot %s: %w", e.ID, l.LotID, err)
			}
		}
		ids[i] = e.ID
	}
	return ids, nil
}

// MarkAcked records that head office has the entries (the sync loop calls it
// with the ids of an acknowledged batch), so Pending stops offering them.
// It does not change any balance: an entry leaves the balance only when a
// replica import's watermark (folded_through) passes it, i.e. when the lots
// head office sent already include it (see loadCard). Unknown ids are an
// error naming them; already acknowledged ids are fine.
func (s *Store) MarkAcked(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark acked: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `UPDATE journal SET acked = 1, acked_ms = coalesce(acked_ms, ?) WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("mark acked: %w", err)
	}
	defer st.Close()
	now := s.now().UnixMilli()
	var unknown []string
	for _, id := range ids {
		res, err := st.ExecContext(ctx, now, id)
		if err != nil {
			return fmt.Errorf("mark acked %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("mark acked: unknown journal ids %s", strings.Join(unknown, ", "))
	}
	return tx.Commit()
}

// Pending returns up to limit unacknowledged entries in append order, for
// the sync loop.
func (s *Store) Pending(ctx context.Context, limit int) ([]Entry, error) {
	return s.entries(ctx, `WHERE j.acked = 0 ORDER BY j.seq LIMIT ?`, limit)
}

// EntriesOfCheck returns the journal entries of one check (a sale and its returns).
func (s *Store) EntriesOfCheck(ctx context.Context, checkID string) ([]Entry, error) {
	return s.entries(ctx, `WHERE j.check_id = ? ORDER BY j.seq`, checkID)
}

func (s *Store) entries(ctx context.Context, where string, args ...any) ([]Entry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT j.seq, j.id, j.check_id, j.card_code, j.kind, j.points,
		j.amount_kop, j.purchase_kop, j.withheld_kop, j.written_off, j.note, j.created_ms, j.acked,
		COALESCE(j.fd, 0), COALESCE(j.fp, 0) FROM journal j `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	defer rows.Close()
	var out []Entry
	var seqs []int64
	for rows.Next() {
		var e Entry
		var seq, created int64
		var pts, kind, wo string
		if err := rows.Scan(&seq, &e.ID, &e.CheckID, &e.CardCode, &kind, &pts, &e.AmountKop,
			&e.PurchaseKop, &e.WithheldKop, &wo, &e.Note, &created, &e.Acked, &e.FD, &e.FP); err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		e.Kind = Kind(kind)
		if e.Points, err = decimal.NewFromString(pts); err != nil {
			return nil, fmt.Errorf("read journal entry %s: points %q: %w", e.ID, pts, err)
		}
		if e.WrittenOff, err = decimal.NewFromString(wo); err != nil {
			return nil, fmt.Errorf("read journal entry %s: written_off %q: %w", e.ID, wo, err)
		}
		e.CreatedAt = time.UnixMilli(created)
		out = append(out, e)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	rows.Close()
	for i := range out {
		lots, err := s.entryLots(ctx, seqs[i])
		if err != nil {
			return nil, fmt.Errorf("read journal entry %s: %w", out[i].ID, err)
		}
		out[i].Lots = lots
	}
	return out, nil
}

func (s *Store) entryLots(ctx context.Context, seq int64) ([]LotChange, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT lot_id, delta, created, active_from, expires_at
		FROM journal_lots WHERE entry_seq = ? ORDER BY lot_id`, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LotChange
	for rows.Next() {
		var l LotChange
		var d string
		var af, ex sql.NullInt64
		if err := rows.Scan(&l.LotID, &d, &l.Create, &af, &ex); err != nil {
			return nil, err
		}
		if l.Delta, err = decimal.NewFromString(d); err != nil {
			return nil, fmt.Errorf("lot %s delta %q: %w", l.LotID, d, err)
		}
		l.ActiveFrom, l.ExpiresAt = fromNullUnix(af), fromNullUnix(ex)
		out = append(out, l)
	}
	return out, rows.Err()
}

func nullUnix(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.Unix(), Valid: true}
}

func fromNullUnix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0).UTC()
}
