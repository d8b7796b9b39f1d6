package headoffice

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// ingestFixture: head office with the demo catalog, one enrolled till and
// three bare cards; chain builds the till's entries: accruals creating a
// lot each on the cards in turn, then a redemption of 3 from the first lot.
func ingestFixture(t *testing.T) (*Server, []wire.Entry) {
	t.Helper()
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T09", "S001"); err != nil {
		t.Fatal(err)
	}
	cards := []string{"3300000000001", "3300000000002", "3300000000003"}
	for _, c := range cards {
		if _, err := s.db.Exec(ctx, `INSERT INTO cards (code, kind, state) VALUES ($1, 'bonus', 'active')`, c); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var out []wire.Entry
	prev := ""
	for i := 1; i <= 7; i++ {
		id := fmt.Sprintf("S001-T09-%026d", i)
		e := wire.Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: id, CreatedAt: at}}
		if i < 7 {
			e.CardCode, e.Kind, e.Points, e.PurchaseKop = cards[(i-1)%3], store.KindAccrual, decimal.NewFromInt(10), 10000
			e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: at}}
		} else {
			first := out[0]
			e.CardCode, e.Kind, e.Points = first.CardCode, store.KindRedemption, decimal.NewFromInt(-3)
			e.Lots = []store.LotChange{{LotID: first.ID, Delta: e.Points}}
		}
		out = append(out, e)
		prev = id
	}
	return s, out
}

type ingestState struct {
	journal, folded, lots, changes int    // lots: of the fixture cards
	remaining                      string // Σ remaining of the fixture cards' lots
	watermark                      string
}

func readIngestState(t *testing.T, s *Server) ingestState {
	t.Helper()
	var st ingestState
	err := s.db.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM journal), (SELECT count(*) FROM journal WHERE folded),
		(SELECT count(*) FROM lots WHERE card LIKE '33%'), (SELECT count(*) FROM changes WHERE section = 'cards'),
		(SELECT coalesce(sum(remaining), 0)::text FROM lots WHERE card LIKE '33%'),
		(SELECT folded_through FROM tills WHERE till_id = 'S001-T09')`).
		Scan(&st.journal, &st.folded, &st.lots, &st.changes, &st.remaining, &st.watermark)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func statuses(res *wire.BatchResult) string {
	var out []string
	for _, r := range res.Results {
		out = append(out, r.Status)
	}
	return strings.Join(out, ",")
}

// TestIngestFailureLeavesNothing: a batch whose last write fails (a trigger
// raises on the change log, the statement before the commit) stores
// nothing at all — no entry, lot, change or watermark — and leaves the
// connection pool usable; once the fault is gone the same batch applies
// whole, again is all duplicates, and a folded entry with other content is
// a conflict. A batch of a till head office does
// not know fails in the first round trip and harms nothing either.
func TestIngestFailureLeavesNothing(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	before := readIngestState(t, s)
	injectFault(t, s, "changes", "AFTER INSERT", "STATEMENT")
	b := &wire.Batch{TillID: "S001-T09", Entries: entries}
	// More attempts than the pool has connections: a connection left in a
	// transaction would show as a hang or an error other than the fault.
	for i := 0; i < 20; i++ {
		if _, err := s.Ingest(ctx, b); err == nil || !strings.Contains(err.Error(), "injected fault") {
			t.Fatalf("attempt %d: Ingest = %v, want the injected fault", i, err)
		}
	}
	if got := readIngestState(t, s); got != before {
		t.Fatalf("after failed batches: %+v, want the state before %+v", got, before)
	}
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T99", Entries: entries[:1]}); err == nil || !strings.Contains(err.Error(), "lock till") {
		t.Fatalf("batch of an unknown till: %v, want a lock till error", err)
	}
	if _, err := s.db.Exec(ctx, `DROP TRIGGER fail_changes ON changes`); err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(res), strings.Repeat("applied,", 6)+"applied"; got != want || res.FoldedThrough != entries[6].ID {
		t.Fatalf("after the fault: %s through %s, want %s through %s", got, res.FoldedThrough, want, entries[6].ID)
	}
	want := ingestState{journal: 7, folded: 7, lots: 6, changes: before.changes + 3, remaining: "57", watermark: entries[6].ID}
	if got := readIngestState(t, s); got != want {
		t.Fatalf("applied: %+v, want %+v", got, want)
	}
	res, err = s.Ingest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != strings.Repeat("duplicate,", 6)+"duplicate" {
		t.Fatalf("again: %s, want all duplicate", got)
	}
	if got := readIngestState(t, s); got != want {
		t.Fatalf("after the retry: %+v, want %+v", got, want)
	}
	// A folded entry sent again with other content is a conflict, not a
	// duplicate, and changes nothing.
	changed := entries[0]
	changed.CheckID = "another check"
	res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: []wire.Entry{changed, entries[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "conflict,duplicate" || res.FoldedThrough != entries[6].ID {
		t.Fatalf("changed copy: %s through %s, want conflict,duplicate through %s", got, res.FoldedThrough, entries[6].ID)
	}
	if got := readIngestState(t, s); got != want {
		t.Fatalf("after the changed copy: %+v, want %+v", got, want)
	}
}

// TestIngestFillsTheGap: the second half of the chain arrives first and is
// stored unfolded; the first half then folds both, the redemption in the
// second half applied to the lot the first half created — read back from
// the stored entry, not the batch. A conflicting copy of a stored unfolded
// entry is refused and does not replace it.
func TestIngestFillsTheGap(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	conflict := entries[5]
	conflict.Points, conflict.Lots = decimal.NewFromInt(99), []store.LotChange{{LotID: conflict.ID, Delta: decimal.NewFromInt(99), Create: true, ActiveFrom: conflict.CreatedAt}}

	res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[4:]})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "applied,applied,applied" || res.FoldedThrough != "" {
		t.Fatalf("second half first: %s through %q, want applied and nothing folded", got, res.FoldedThrough)
	}
	if st := readIngestState(t, s); st.journal != 3 || st.folded != 0 || st.lots != 0 {
		t.Fatalf("second half first: %+v, want 3 unfolded entries and no lots", st)
	}
	res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: append(append([]wire.Entry(nil), entries[:4]...), conflict)})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "applied,applied,applied,applied,conflict" || res.FoldedThrough != entries[6].ID {
		t.Fatalf("first half: %s through %s, want four applied, a conflict, through %s", got, res.FoldedThrough, entries[6].ID)
	}
	st := readIngestState(t, s)
	if st.journal != 7 || st.folded != 7 || st.lots != 6 || st.remaining != "57" || st.watermark != entries[6].ID {
		t.Fatalf("filled: %+v, want 7 folded entries, 6 lots with 57 points left, watermark %s", st, entries[6].ID)
	}
	var rem string
	if err := s.db.QueryRow(ctx, `SELECT remaining::text FROM lots WHERE lot_id = $1`, entries[0].ID).Scan(&rem); err != nil || rem != "7" {
		t.Fatalf("first lot after the redemption: %q %v, want 7", rem, err)
	}
}
