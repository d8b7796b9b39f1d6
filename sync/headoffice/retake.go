package headoffice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Retaken is what RetakeJournal did with one till's entries.
type Retaken struct {
	TillID string
	// Held counts the entries at or before the till's watermark: head
	// office has them folded already, so they are not sent again.
	Held int
	// PassedOver counts the entries at or before the watermark that head
	// office does not hold: its chain went on past them, so they can never
	// be folded (a till whose store was replaced since the backup pushed
	// its new journal before the retake ran: docs/sync.md, "Restoring head
	// office: the steps"). Support corrects their cards.
	PassedOver int
	// What ingestion answered for the others (wire.Applied and so on).
	Applied   int
	Duplicate int
	Conflict  int
	Rejected  int
	// Problems names the first entries answered conflict or rejected.
	Problems []string
	// The till's watermark before and after, and how many of its entries
	// still wait behind a gap in its chain.
	FoldedBefore  string
	FoldedThrough string
	Waiting       int
	// Kept counts the entries of a till head office does not know
	// (enrolled since the backup): kept at head office, and taken as above
	// once the till is admitted from its enrolment secret or enrolled
	// again (docs/sync.md, "What a till keeps of its journal").
	Kept int
	// Err is why nothing more of this till was taken (a retired till, a
	// failed batch); the batches before it stay.
	Err string
	// through is the last entry read of the source.
	through string
	// unkept counts the rows of retake_kept this run deleted, taken:
	// another process taking the same till meanwhile deletes the others.
	unkept int
}

// copiedEntry is an entry of ERP's copy: its id and its bytes.
type copiedEntry struct {
	id   string
	body json.RawMessage
}

// retakeWorkers is how many tills RetakeJournal takes at once.
const retakeWorkers = 4

// retakeBatch is how many entries RetakeJournal ingests a transaction, as
// a till's sync.batch_size does by default.
const retakeBatch = 500

// maxProblems bounds Retaken.Problems.
const maxProblems = 20

// RetakeJournal gives head office back journal entries it lost, from ERP's
// copy of the journal export: after a restore from a backup older than
// -journal-hold, tills have dropped entries head office no longer has
// (docs/sync.md, "What a till keeps of its journal"). Each till's entries
// are ingested as the till pushed them, in id order (the order of its
// chain), a batch a transaction, read from the copy a batch at a time:
// the exported body is the entry with its predecessor, so the content
// digest is the one the till's push had, an entry head office holds
// answers duplicate and one it holds otherwise conflict. Those at or
// before the till's watermark are skipped. ERP's corrections (till ERP)
// are given again as ERP would send them (retakeCorrections). A copy that
// failed to fill (JournalCopy.Add) is refused before anything is written.
// done, if not nil, is called with each till's Retaken as it ends, one
// call at a time: a whole chain's retake is hours, and the operator
// watches it go.
func (s *Server) RetakeJournal(ctx context.Context, c *JournalCopy, done func(Retaken)) ([]Retaken, error) {
	tills, err := c.tills(ctx)
	if err != nil {
		return nil, fmt.Errorf("retake journal, nothing written: %w", err)
	}
	// Tills at once, each in its own transactions (Ingest's lock order
	// keeps them from deadlocking): a chain's whole export is hours of one
	// connection.
	out := make([]Retaken, len(tills))
	next := make(chan int)
	var wg sync.WaitGroup
	var doneMu sync.Mutex
	for range min(retakeWorkers, len(tills)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if tills[i] == ERPTill {
					out[i] = s.retakeCorrections(ctx, c)
				} else {
					out[i] = s.retakeTill(ctx, c, tills[i])
				}
				if done != nil {
					doneMu.Lock()
					done(out[i])
					doneMu.Unlock()
				}
			}
		}()
	}
	for i := range tills {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, nil
}

// entrySource is where a retake reads a till's entries, in id order:
// ERP's copy (JournalCopy), or what a run kept for a till head office did
// not know (keptEntries).
type entrySource interface {
	// page reads at most n entries of till after id after.
	page(ctx context.Context, till, after string, n int) ([]copiedEntry, error)
	// ids reads at most n ids of till after after, up to and including
	// through.
	ids(ctx context.Context, till, after, through string, n int) ([]string, error)
}

// retakeTill ingests one till's entries of the copy. Those of a till head
// office does not know (enrolled since the backup) are kept at head office
// until it is admitted (keepEntries).
func (s *Server) retakeTill(ctx context.Context, c *JournalCopy, till string) Retaken {
	r, err := s.takeEntries(ctx, c, till)
	if errors.Is(err, ErrUnknownTill) {
		return s.keepEntries(ctx, c, till)
	}
	return r
}

// takeEntries ingests till's entries of src after its watermark, a batch a
// transaction, and counts those at or before it. The error, also in
// Retaken.Err, is why it stopped.
func (s *Server) takeEntries(ctx context.Context, src entrySource, till string) (Retaken, error) {
	r := Retaken{TillID: till}
	err := s.tillWatermark(ctx, till, &r.FoldedBefore, nil)
	if errors.Is(err, ErrUnknownTill) {
		r.Err = err.Error()
		return r, err
	}
	if err == nil && r.FoldedBefore != "" {
		err = s.retakeHeld(ctx, src, till, &r)
	}
	for after := r.FoldedBefore; err == nil; {
		var es []copiedEntry
		if es, err = src.page(ctx, till, after, retakeBatch); err != nil || len(es) == 0 {
			break
		}
		bodies := make([]json.RawMessage, len(es))
		for i := range es {
			bodies[i] = es[i].body
		}
		err = s.retakeBatch(ctx, till, bodies, &r)
		after = es[len(es)-1].id
		r.through = after
	}
	if err != nil {
		r.Err = err.Error()
		s.log.Error("retake journal", "till", till, "err", err)
	}
	if werr := s.tillWatermark(ctx, till, &r.FoldedThrough, &r.Waiting); werr != nil && err == nil {
		err = werr
		r.Err = werr.Error()
	}
	return r, err
}

// retakeHeld counts the copy's entries of till at or before its watermark
// into r: those head office holds, and those it passed over.
func (s *Server) retakeHeld(ctx context.Context, src entrySource, till string, r *Retaken) error {
	for after := ""; ; {
		ids, err := src.ids(ctx, till, after, r.FoldedBefore, retakeBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, _ := s.db.Query(ctx, `SELECT id FROM journal WHERE id = ANY($1)`, ids)
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read the entries held of till %s: %w", till, err)
		}
		held := make(map[string]bool, len(found))
		for _, id := range found {
			held[id] = true
		}
		for _, id := range ids {
			if held[id] {
				r.Held++
				continue
			}
			r.PassedOver++
			r.problem(id, "passed over", "at or before the watermark, not held: head office's chain went on past it, it can never be folded")
		}
		after = ids[len(ids)-1]
		r.through = after
	}
}

// retakeCorrections gives again ERP's corrections of the copy (the export
// holds them under till ERP) as ERP would send them: Correct is idempotent
// by id, so one head office holds answers duplicate. Each is rebuilt from
// its entry: the id after "ERP-", the card, the points, the note as the
// reason, and an accrual's lot's expiry; the digest is then the one of the
// first request. An accrual whose lot has expired since is refused, as
// ERP's would be, and named.
func (s *Server) retakeCorrections(ctx context.Context, c *JournalCopy) Retaken {
	r := Retaken{TillID: ERPTill}
	stop := func(id string, err error) Retaken {
		r.Err = err.Error()
		s.log.Error("retake journal", "till", ERPTill, "entry", id, "err", err)
		return r
	}
	for after := ""; ; {
		es, err := c.page(ctx, ERPTill, after, retakeBatch)
		if err != nil {
			return stop(after, err)
		}
		if len(es) == 0 {
			return r
		}
		for _, x := range es {
			res, err := s.retakeCorrection(ctx, x.body)
			switch {
			case err == nil && res.Duplicate:
				r.Duplicate++
			case err == nil:
				r.Applied++
			case errors.As(err, new(refusedError)):
				r.Rejected++
				r.problem(x.id, wire.Rejected, err.Error())
			default:
				return stop(x.id, err)
			}
		}
		after = es[len(es)-1].id
	}
}

func (s *Server) retakeCorrection(ctx context.Context, body []byte) (CorrectionResult, error) {
	c, err := correctionOf(body)
	if err != nil {
		return CorrectionResult{}, err
	}
	return s.Correct(ctx, c)
}

// correctionOf rebuilds the request of ERP's correction entry body.
func correctionOf(body []byte) (Correction, error) {
	var e wire.Entry
	if err := json.Unmarshal(body, &e); err != nil {
		return Correction{}, refused(fmt.Errorf("not a journal entry: %w", err))
	}
	id, ok := strings.CutPrefix(e.ID, ERPTill+"-")
	if !ok || e.Kind != store.KindCorrection {
		return Correction{}, refused(fmt.Errorf("entry %s of kind %q: not an ERP correction", e.ID, e.Kind))
	}
	c := Correction{ID: id, Card: e.CardCode, Points: e.Points, Reason: e.Note}
	if len(e.Lots) == 1 && e.Lots[0].Create && !e.Lots[0].ExpiresAt.IsZero() {
		at := e.Lots[0].ExpiresAt.UTC()
		c.ExpiresAt = &at
	}
	return c, nil
}

// sameCorrection says whether two bodies of ERP's journal are one
// correction request: given again after a restore (step 2 of the steps,
// or a retake), head office wrote it anew, at another time, its deduction
// taking lots afresh, so an export after the restore holds other bytes
// under the id than one before it.
func sameCorrection(a, b []byte) bool {
	ca, err1 := correctionOf(a)
	cb, err2 := correctionOf(b)
	if err1 != nil || err2 != nil {
		return false
	}
	sameExpiry := ca.ExpiresAt == nil && cb.ExpiresAt == nil ||
		ca.ExpiresAt != nil && cb.ExpiresAt != nil && ca.ExpiresAt.Equal(*cb.ExpiresAt)
	return ca.ID == cb.ID && ca.Card == cb.Card && ca.Points.Equal(cb.Points) && ca.Reason == cb.Reason && sameExpiry
}

// retakeBatch decodes entries as a push of till would carry them and
// ingests them, counting the answers into r.
func (s *Server) retakeBatch(ctx context.Context, till string, bodies []json.RawMessage, r *Retaken) error {
	b, err := decodeRetake(till, bodies)
	if err != nil {
		return err
	}
	// A till whose store was replaced has a journal for each store, each
	// starting with an entry that has no predecessor. Ingest takes such an
	// entry as the restart only at the head of what it folds, as a till's
	// push would bring it: each chain goes in its own batches, decoded
	// apart so that the entries the decoder refused go with their own. So
	// does a fork, an entry following another than the one before it (a
	// till store put back from an older image): in one batch with the
	// branch it forks from, one of the two was left unlinked, waiting for
	// ever; in a batch of its own, ingest restarts the chain there.
	prevOf := map[string]string{}
	for _, es := range [][]wire.Entry{b.Entries, b.Refused} {
		for _, e := range es {
			prevOf[e.ID] = e.Prev
		}
	}
	ids := make([]string, len(bodies))
	for i, body := range bodies {
		ids[i], _ = entryID(body)
	}
	from := 0
	for i := 1; i <= len(bodies); i++ {
		if i < len(bodies) {
			if prev := prevOf[ids[i]]; prev != "" && prev == ids[i-1] {
				continue
			}
		}
		part := b
		if from > 0 || i < len(bodies) {
			if part, err = decodeRetake(till, bodies[from:i]); err != nil {
				return err
			}
		}
		if err := s.retakeIngest(ctx, part, r); err != nil {
			return err
		}
		from = i
	}
	return nil
}

// decodeRetake decodes entries as a push of till.
func decodeRetake(till string, bodies []json.RawMessage) (*wire.Batch, error) {
	// Written by hand: json.Marshal would check and compact every body
	// again, a fifth of the retake's time.
	n := 32 + len(till)
	for _, e := range bodies {
		n += len(e) + 1
	}
	data := store.AppendJSONString(append(make([]byte, 0, n), `{"till_id":`...), till)
	data = append(data, `,"entries":[`...)
	for i, e := range bodies {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, e...)
	}
	return wire.DecodeBatch(append(data, "]}"...))
}

// retakeIngest ingests b, counting the answers into r.
func (s *Server) retakeIngest(ctx context.Context, b *wire.Batch, r *Retaken) error {
	res, err := s.Ingest(ctx, b)
	if err != nil {
		return err
	}
	for _, x := range res.Results {
		switch x.Status {
		case wire.Applied:
			r.Applied++
		case wire.Duplicate:
			r.Duplicate++
		case wire.Conflict:
			r.Conflict++
		default:
			r.Rejected++
		}
		if x.Status != wire.Applied && x.Status != wire.Duplicate {
			r.problem(x.ID, x.Status, x.Error)
		}
	}
	return nil
}

// problem names entry id, answered status (why), among the first
// maxProblems.
func (r *Retaken) problem(id, status, why string) {
	if len(r.Problems) >= maxProblems {
		return
	}
	p := id + ": " + status
	if why != "" {
		p += ": " + why
	}
	r.Problems = append(r.Problems, p)
}

// tillWatermark reads a till's watermark and, if waiting is not nil, how
// many of its stored entries are not folded yet.
func (s *Server) tillWatermark(ctx context.Context, till string, folded *string, waiting *int) error {
	q, dst := `SELECT folded_through FROM tills WHERE till_id = $1`, []any{folded}
	if waiting != nil { // counted only when asked: the first read needs the watermark alone
		q = `SELECT folded_through, (SELECT count(*) FROM journal WHERE till_id = $1 AND NOT folded) FROM tills WHERE till_id = $1`
		dst = append(dst, waiting)
	}
	err := s.db.QueryRow(ctx, q, till).Scan(dst...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("till %s: %w", till, ErrUnknownTill)
	}
	if err != nil {
		return fmt.Errorf("read the watermark of till %s: %w", till, err)
	}
	return nil
}
