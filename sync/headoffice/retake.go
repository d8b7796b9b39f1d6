package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
	// Err is why nothing more of this till was taken (an unknown or
	// retired till, a failed batch); the batches before it stay.
	Err string
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
// chain), a batch a transaction: the exported body is the entry with its
// predecessor, so the content digest is the one the till's push had, an
// entry head office holds answers duplicate and one it holds otherwise
// conflict. Those at or before the till's watermark are skipped. ERP's
// corrections (till ERP) are given again as ERP would send them
// (retakeCorrections). The same id given twice with different bytes
// refuses the whole run before anything is written: the copy is not what
// head office exported.
func (s *Server) RetakeJournal(ctx context.Context, exported []ExportedEntry) ([]Retaken, error) {
	byTill := map[string][]copiedEntry{}
	seen := map[string]json.RawMessage{}
	for i, x := range exported {
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(x.Entry, &head); err != nil || head.ID == "" {
			return nil, fmt.Errorf("retake journal: exported entry %d of till %q: no entry id (%v)", i, x.TillID, err)
		}
		if x.TillID == "" {
			return nil, fmt.Errorf("retake journal: exported entry %s: no till_id", head.ID)
		}
		body := compactJSON(x.Entry)
		if prev, ok := seen[head.ID]; ok {
			if !bytes.Equal(prev, body) {
				return nil, fmt.Errorf("retake journal: entry %s given twice with different content: the copy is not head office's export, nothing written", head.ID)
			}
			continue
		}
		seen[head.ID] = body
		byTill[x.TillID] = append(byTill[x.TillID], copiedEntry{head.ID, body})
	}
	tills := make([]string, 0, len(byTill))
	for t, es := range byTill {
		tills = append(tills, t)
		// Byte order: the order of ids along a chain (CheckEntry: prev < id).
		slices.SortFunc(es, func(a, b copiedEntry) int { return strings.Compare(a.id, b.id) })
	}
	slices.Sort(tills)
	// Tills at once, each in its own transactions (Ingest's lock order
	// keeps them from deadlocking): a chain's whole export is hours of one
	// connection.
	out := make([]Retaken, len(tills))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(retakeWorkers, len(tills)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if tills[i] == ERPTill {
					out[i] = s.retakeCorrections(ctx, byTill[tills[i]])
				} else {
					out[i] = s.retakeTill(ctx, tills[i], byTill[tills[i]])
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

// retakeTill ingests one till's entries of the copy, sorted by id.
func (s *Server) retakeTill(ctx context.Context, till string, es []copiedEntry) Retaken {
	r := Retaken{TillID: till}
	err := s.tillWatermark(ctx, till, &r.FoldedBefore, nil)
	for len(es) > 0 && err == nil && es[0].id <= r.FoldedBefore {
		es, r.Held = es[1:], r.Held+1
	}
	for len(es) > 0 && err == nil {
		n := min(len(es), retakeBatch)
		bodies := make([]json.RawMessage, n)
		for i := range bodies {
			bodies[i] = es[i].body
		}
		err = s.retakeBatch(ctx, till, bodies, &r)
		es = es[n:]
	}
	if err != nil {
		r.Err = err.Error()
		s.log.Error("retake journal", "till", till, "err", err)
	}
	if werr := s.tillWatermark(ctx, till, &r.FoldedThrough, &r.Waiting); werr != nil && err == nil {
		r.Err = werr.Error()
	}
	return r
}

// retakeCorrections gives again ERP's corrections of the copy (the export
// holds them under till ERP) as ERP would send them: Correct is idempotent
// by id, so one head office holds answers duplicate. Each is rebuilt from
// its entry: the id after "ERP-", the card, the points, the note as the
// reason, and an accrual's lot's expiry; the digest is then the one of the
// first request. An accrual whose lot has expired since is refused, as
// ERP's would be, and named.
func (s *Server) retakeCorrections(ctx context.Context, es []copiedEntry) Retaken {
	r := Retaken{TillID: ERPTill}
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
			r.Err = err.Error()
			s.log.Error("retake journal", "till", ERPTill, "entry", x.id, "err", err)
			return r
		}
	}
	return r
}

func (s *Server) retakeCorrection(ctx context.Context, body []byte) (CorrectionResult, error) {
	var e wire.Entry
	if err := json.Unmarshal(body, &e); err != nil {
		return CorrectionResult{}, refused(fmt.Errorf("not a journal entry: %w", err))
	}
	id, ok := strings.CutPrefix(e.ID, ERPTill+"-")
	if !ok || e.Kind != store.KindCorrection {
		return CorrectionResult{}, refused(fmt.Errorf("entry %s of kind %q: not an ERP correction", e.ID, e.Kind))
	}
	c := Correction{ID: id, Card: e.CardCode, Points: e.Points, Reason: e.Note}
	if len(e.Lots) == 1 && e.Lots[0].Create && !e.Lots[0].ExpiresAt.IsZero() {
		at := e.Lots[0].ExpiresAt.UTC()
		c.ExpiresAt = &at
	}
	return s.Correct(ctx, c)
}

// retakeBatch decodes entries as a push of till would carry them and
// ingests them, counting the answers into r.
func (s *Server) retakeBatch(ctx context.Context, till string, bodies []json.RawMessage, r *Retaken) error {
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
	b, err := wire.DecodeBatch(append(data, "]}"...))
	if err != nil {
		return err
	}
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
	var n int
	err := s.db.QueryRow(ctx, `SELECT folded_through, (SELECT count(*) FROM journal WHERE till_id = $1 AND NOT folded)
		FROM tills WHERE till_id = $1`, till).Scan(folded, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("till %s: %w (enrol it, or let it sync once, then run again)", till, ErrUnknownTill)
	}
	if err != nil {
		return fmt.Errorf("read the watermark of till %s: %w", till, err)
	}
	if waiting != nil {
		*waiting = n
	}
	return nil
}

// compactJSON is data without insignificant space, so that the same entry
// saved by two exports (or pretty-printed by ERP) compares equal; data that
// is not JSON is returned as it is, for the decoder to name.
func compactJSON(data json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, data) != nil || b.Len() == len(data) {
		return data // not JSON, or compact already (as the export writes it)
	}
	return b.Bytes()
}

// DecodeExport reads ERP's copy of the journal export: the export's pages
// (GET /v1/erp/journal answers) one after another, or its entries one a
// line (each `{"till_id": …, "entry": …}`), or both mixed. Anything else is
// an error naming the value.
func DecodeExport(r io.Reader) ([]ExportedEntry, error) {
	dec := json.NewDecoder(r)
	var out []ExportedEntry
	for n := 1; ; n++ {
		var v struct {
			Entries *[]ExportedEntry `json:"entries"`
			ExportedEntry
		}
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("journal export, value %d: %w", n, err)
		}
		switch {
		case v.Entries != nil && v.TillID == "" && v.Entry == nil:
			out = append(out, *v.Entries...)
		case v.Entries == nil && v.TillID != "" && v.Entry != nil:
			out = append(out, v.ExportedEntry)
		default:
			return nil, fmt.Errorf("journal export, value %d: neither a page ({\"entries\": […]}) nor an exported entry ({\"till_id\", \"entry\"})", n)
		}
	}
}
