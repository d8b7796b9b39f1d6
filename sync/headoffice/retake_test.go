package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// exportPages is the whole journal export of s as ERP keeps it: its pages,
// of limit entries, one after another, once it holds n entries (it lags
// while an older transaction anywhere in the cluster runs: other tests').
func exportPages(t *testing.T, s *Server, limit, n int) []byte {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var out bytes.Buffer
		got := 0
		for cursor := ""; ; {
			p, err := s.ExportJournal(context.Background(), cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.NewEncoder(&out).Encode(p); err != nil {
				t.Fatal(err)
			}
			got += len(p.Entries)
			if !p.More {
				break
			}
			cursor = p.Cursor
		}
		if got == n {
			return out.Bytes()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal export holds %d entries, want %d", got, n)
		}
	}
}

// journalCopy is a JournalCopy of the export data (its pages, or an entry
// a line), removed when t ends.
func journalCopy(t *testing.T, data []byte) *JournalCopy {
	t.Helper()
	c := newCopy(t)
	if err := c.ReadExport(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return c
}

func newCopy(t *testing.T) *JournalCopy {
	t.Helper()
	c, err := NewJournalCopy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// copyOf is a JournalCopy of es.
func copyOf(t *testing.T, es ...ExportedEntry) *JournalCopy {
	t.Helper()
	c := newCopy(t)
	for _, x := range es {
		if err := c.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// retake runs RetakeJournal and returns what it did for each of tills, in
// that order: nothing else.
func retake(t *testing.T, s *Server, c *JournalCopy, tills ...string) []Retaken {
	t.Helper()
	var reported []Retaken
	rs, err := s.RetakeJournal(context.Background(), c, func(r Retaken) { reported = append(reported, r) })
	if err != nil || len(rs) != len(tills) {
		t.Fatalf("retake: %+v, %v; want tills %v", rs, err, tills)
	}
	for i, r := range rs {
		if r.TillID != tills[i] {
			t.Fatalf("retake: %+v; want tills %v", rs, tills)
		}
		if j := slices.IndexFunc(reported, func(x Retaken) bool { return x.TillID == r.TillID }); j < 0 || !reflect.DeepEqual(reported[j], r) {
			t.Fatalf("retake of till %s: %+v, reported as it ended %+v", r.TillID, r, reported)
		}
	}
	if len(reported) != len(rs) {
		t.Fatalf("retake reported %+v as the tills ended, want each of %+v once", reported, rs)
	}
	return rs
}

// TestRetakeJournalFillsWhatARestoreLost: head office A has the till's
// whole chain and two ERP corrections, and ERP its export; head office B
// (restored from an old backup, the till having dropped what it lacks)
// holds the first two entries folded, the last two waiting behind the gap,
// and one of the corrections. Retaking A's export into B stores the three
// entries it lacks, folds through to the last one, gives the other
// correction again, and leaves B's lots and balances as A's; a second run
// changes nothing.
func TestRetakeJournalFillsWhatARestoreLost(t *testing.T) {
	ctx := context.Background()
	a, entries := ingestFixture(t)
	if res, err := a.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil || res.FoldedThrough != entries[6].ID {
		t.Fatalf("head office A: %+v, %v", res, err)
	}
	expires := demoNow.Add(90 * 24 * time.Hour).In(time.FixedZone("MSK", 3*3600))
	goodwill := Correction{ID: "t-1", Card: "3300000000001", Points: dec("15"), Reason: "goodwill", ExpiresAt: &expires}
	deduct := Correction{ID: "t-2", Card: "3300000000002", Points: dec("-4"), Reason: "double accrual"}
	for _, c := range []Correction{goodwill, deduct} {
		if _, err := a.Correct(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	export := exportPages(t, a, 3, len(entries)+2) // three pages
	want := readIngestState(t, a)

	b, _ := ingestFixture(t)
	for _, part := range [][]wire.Entry{entries[:2], entries[5:]} {
		if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: part}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Correct(ctx, deduct); err != nil {
		t.Fatal(err)
	}
	if st := readIngestState(t, b); st.watermark != entries[1].ID || st.journal != 5 {
		t.Fatalf("head office B before: %+v, want 4 entries folded through the second and a correction", st)
	}

	rs := retake(t, b, journalCopy(t, export), "ERP", "S001-T09")
	if c := rs[0]; c.Applied != 1 || c.Duplicate != 1 || c.Rejected != 0 || c.Err != "" {
		t.Fatalf("corrections retaken: %+v; want the one B lacked applied, the other duplicate", c)
	}
	if r := rs[1]; r.Held != 2 || r.Applied != 3 || r.Duplicate != 2 || r.Conflict+r.Rejected != 0 || r.Err != "" ||
		r.FoldedBefore != entries[1].ID || r.FoldedThrough != entries[6].ID || r.Waiting != 0 {
		t.Fatalf("retake: %+v; want 2 held, 3 applied, the 2 waiting duplicate, folded through the last", r)
	}
	var lotExpires time.Time
	if err := b.db.QueryRow(ctx, `SELECT expires_at FROM lots WHERE lot_id = 'ERP-t-1'`).Scan(&lotExpires); err != nil || !lotExpires.Equal(expires) {
		t.Errorf("the correction's lot given again expires %v (%v), want %v", lotExpires, err, expires)
	}
	// The change rows differ (B wrote its entries in three transactions),
	// and so do the lots' remaining points: B's deduction came before card
	// 2's second accrual, which paid its debt back; balances are equal.
	after := readIngestState(t, b)
	if after.journal != want.journal || after.folded != want.folded || after.lots != want.lots || after.watermark != want.watermark {
		t.Fatalf("head office B after: %+v, want A's %+v", after, want)
	}
	for _, c := range []string{"3300000000001", "3300000000002", "3300000000003"} {
		if ga, gb := balanceOf(t, a, c), balanceOf(t, b, c); ga != gb {
			t.Errorf("card %s: %s at B, %s at A", c, gb, ga)
		}
	}
	rs = retake(t, b, journalCopy(t, export), "ERP", "S001-T09")
	if c, r := rs[0], rs[1]; c.Duplicate != 2 || c.Applied != 0 || r.Held != 7 || r.Applied+r.Duplicate != 0 || r.FoldedThrough != entries[6].ID {
		t.Fatalf("second retake: %+v; want everything held", rs)
	}
	if got := readIngestState(t, b); got != after {
		t.Fatalf("after the second retake: %+v, want %+v", got, after)
	}
}

// TestRetakeJournalRefusesWhatIsNotTheExport: the same id twice with other
// content writes nothing; an entry otherwise than head office holds it is
// a conflict, named; a copy lacking an entry leaves the rest waiting; an
// unknown till's entries are kept and do not stop the others; the entries may be
// pretty-printed, one a line, or in pages.
func TestRetakeJournalRefusesWhatIsNotTheExport(t *testing.T) {
	ctx := context.Background()
	b, entries := ingestFixture(t)
	if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:2]}); err != nil {
		t.Fatal(err)
	}
	line := func(till string, e wire.Entry) ExportedEntry {
		body, ok := wire.AppendEntry(nil, e)
		if !ok {
			t.Fatalf("encode %s", e.ID)
		}
		return ExportedEntry{TillID: till, Entry: body}
	}
	before := readIngestState(t, b)

	other := entries[3]
	other.Points = decimal.NewFromInt(11)
	other.Lots = []store.LotChange{{LotID: other.ID, Delta: other.Points, Create: true, ActiveFrom: other.CreatedAt}}
	twice := newCopy(t)
	if err := twice.Add(line("S001-T09", entries[3])); err != nil {
		t.Fatal(err)
	}
	if err := twice.Add(line("S001-T09", other)); err == nil || !strings.Contains(err.Error(), entries[3].ID+" given twice with different content") {
		t.Fatalf("the same id twice, otherwise: %v", err)
	}
	if err := twice.Add(line("S001-T09", entries[3])); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("an entry added after the copy failed: %v, want the failure again", err)
	}
	if rs, err := b.RetakeJournal(ctx, twice, nil); err == nil || !strings.Contains(err.Error(), "nothing written") || rs != nil {
		t.Fatalf("retaking a copy that failed: %+v, %v", rs, err)
	}
	elsewhere := copyOf(t, line("S001-T09", entries[3]))
	if err := elsewhere.Add(line("S001-T10", entries[3])); err == nil || !strings.Contains(err.Error(), "given twice with different content") {
		t.Fatalf("the same entry under another till: %v", err)
	}
	if got := readIngestState(t, b); got != before {
		t.Fatalf("after the refused copy: %+v, want %+v", got, before)
	}

	// Entry 3 stored as the till sent it; the copy has it otherwise, and
	// lacks entry 4: 2 and 3 fold, 5 and 6 wait.
	if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[3:4]}); err != nil {
		t.Fatal(err)
	}
	var copy []ExportedEntry
	for i, e := range entries {
		switch i {
		case 3:
			copy = append(copy, line("S001-T09", other))
		case 4:
		default:
			copy = append(copy, line("S001-T09", e))
		}
	}
	copy = append(copy, line("S001-T77", wire.Entry{Entry: store.Entry{ID: "S001-T77-1"}}))
	var file bytes.Buffer
	for i, x := range copy {
		if i%2 == 0 {
			json.NewEncoder(&file).Encode(x) // an entry a line
			continue
		}
		p, _ := json.MarshalIndent(Export{Entries: []ExportedEntry{x}}, "", "  ") // a page, pretty-printed
		file.Write(p)
	}
	rs := retake(t, b, journalCopy(t, file.Bytes()), "S001-T09", "S001-T77")
	r := rs[0]
	if r.TillID != "S001-T09" || r.Held != 2 || r.Applied != 3 || r.Conflict != 1 || r.Duplicate != 0 ||
		r.FoldedThrough != entries[3].ID || r.Waiting != 2 || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], entries[3].ID+": conflict") {
		t.Fatalf("retake: %+v; want 2 held, 2 and 5, 6 applied, 3 a conflict, folded through 3, 5 and 6 waiting", r)
	}
	if u := rs[1]; u.TillID != "S001-T77" || u.Err != "" || u.Kept != 1 || u.Applied != 0 {
		t.Fatalf("unknown till: %+v; want its entry kept for when it is enrolled", u)
	}

	// ERP's corrections: one whose lot has expired since is refused, as
	// ERP's own would be, and so is an entry of another kind under ERP.
	past := demoNow.Add(-time.Hour)
	expired := wire.Entry{Entry: store.Entry{ID: "ERP-old", CheckID: "ERP-old", CardCode: "3300000000001", Kind: store.KindCorrection,
		Points: dec("5"), Note: "goodwill", Lots: []store.LotChange{{LotID: "ERP-old", Delta: dec("5"), Create: true, ActiveFrom: past, ExpiresAt: past}}}}
	odd := wire.Entry{Entry: store.Entry{ID: "ERP-odd", CardCode: "3300000000001", Kind: store.KindAccrual, Points: dec("5")}}
	c := retake(t, b, copyOf(t, line("ERP", expired), line("ERP", odd)), "ERP")[0]
	if c.Rejected != 2 || c.Applied+c.Duplicate != 0 || len(c.Problems) != 2 ||
		!strings.Contains(c.Problems[0], "ERP-odd: rejected: ") || !strings.Contains(c.Problems[1], "ERP-old: rejected: ") || !strings.Contains(c.Problems[1], "expires_at") {
		t.Fatalf("ERP entries that are no correction ERP could send: %+v", c)
	}

	for _, bad := range []string{`[1, 2]`, `{"cursor": "1.1"}`, `{"entries": [], "till_id": "S001-T09"}`, `{"entries": [`, `{"entries": null}`,
		`{"till_id": "S001-T09"}`, `{"entry": {"id": "S001-T09-1"}}`, `{"entries": [{"till_id": "S001-T09", "entry": {}}]}`, `"x"`, `{"entries": {}}`} {
		if err := newCopy(t).ReadExport(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "journal export, value 1") {
			t.Errorf("ReadExport(%s): %v, want an error naming the value", bad, err)
		}
	}
	// The value is counted across the file: the third is cut short.
	if err := newCopy(t).ReadExport(strings.NewReader(`{"entries": []} {"entries": []}` + "\n" + `{"till_id": "S001-T09", "entry": {"id": "S0`)); err == nil ||
		!strings.Contains(err.Error(), "journal export, value 3: unexpected EOF") {
		t.Errorf("an export cut short: %v", err)
	}
}

// TestExportOrdersXidsAsNumbers: the journal's xids cross a power of ten
// (…98, …99, 10…0, 10…1, as a live cluster's do once in a while); every
// entry is exported once, in xid order, across pages of two. The export
// had ordered by the xids' text: the first page then ended on the lowest
// xid, and the next gave entries again and skipped others (seen in CI as
// a restore test's export short of three entries).
func TestExportOrdersXidsAsNumbers(t *testing.T) {
	ctx := context.Background()
	s, entries := ingestFixture(t)
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	var now uint64
	if err := s.db.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	ten := uint64(1)
	for ten*10 <= now {
		ten *= 10
	}
	if ten < 100 {
		t.Fatalf("the cluster's xid %d has no power of ten far enough below it", now)
	}
	// Two entries a transaction, as batches write them.
	xids := []uint64{ten - 2, ten - 2, ten - 1, ten, ten, ten + 1, ten + 1}
	for i, e := range entries {
		if _, err := s.db.Exec(ctx, `UPDATE journal SET xid = $2::text::xid8 WHERE id = $1`, e.ID, strconv.FormatUint(xids[i], 10)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for dec := json.NewDecoder(bytes.NewReader(exportPages(t, s, 2, len(entries)))); dec.More(); {
		var p Export
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for _, x := range p.Entries {
			var e wire.Entry
			if err := json.Unmarshal(x.Entry, &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.ID)
		}
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("exported in pages of 2 across xid %d:\n%v\nwant each once, in xid order:\n%v", ten, got, want)
	}
}

// replacedStores is the fixture till's journal after its store was
// replaced twice: the fixture's seven entries, then two more journals of
// accruals (three and two), each starting with an entry that has no
// predecessor, as a new store's does.
func replacedStores(first []wire.Entry) (journals [][]wire.Entry) {
	journals = append(journals, first)
	for j, n := range []int{3, 2} {
		var es []wire.Entry
		for i := range n {
			id := fmt.Sprintf("S001-T09-%026d", 100*(j+1)+i)
			e := first[i]
			e.ID, e.CheckID, e.Prev = id, id, ""
			if i > 0 {
				e.Prev = es[i-1].ID
			}
			e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: e.CreatedAt}}
			es = append(es, e)
		}
		journals = append(journals, es)
	}
	return journals
}

// TestRetakeJournalTakesEachStoresJournal: the till's store was replaced
// twice since the backup, so the copy holds three journals of the till.
// Each is ingested as the till pushed it, the new store's first entry at
// the head of a batch: all of them fold, none is kept as an orphan of a
// replaced store. Had head office's chain gone on past them before the
// retake (the third store pushed its journal first), the entries it lacks
// at or before the watermark are named as passed over, not counted as held.
func TestRetakeJournalTakesEachStoresJournal(t *testing.T) {
	ctx := context.Background()
	a, entries := ingestFixture(t)
	journals := replacedStores(entries)
	n := 0
	for _, j := range journals {
		if _, err := a.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: j}); err != nil {
			t.Fatal(err)
		}
		n += len(j)
	}
	last := journals[2][1].ID
	want := readIngestState(t, a)
	if want.watermark != last || want.folded != n {
		t.Fatalf("head office A: %+v, want all %d entries folded through %s", want, n, last)
	}
	export := exportPages(t, a, 100, n)

	b, _ := ingestFixture(t)
	if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:2]}); err != nil {
		t.Fatal(err)
	}
	r := retake(t, b, journalCopy(t, export), "S001-T09")[0]
	if r.Held != 2 || r.Applied != n-2 || r.Rejected+r.Conflict+r.PassedOver != 0 || r.Waiting != 0 || r.FoldedThrough != last {
		t.Fatalf("retake of three stores' journals: %+v; want 2 held, %d applied, folded through %s", r, n-2, last)
	}
	if got := readIngestState(t, b); got.folded != want.folded || got.remaining != want.remaining || got.lots != want.lots {
		t.Fatalf("head office B after the retake: %+v, want A's %+v", got, want)
	}

	c, _ := ingestFixture(t)
	for _, j := range [][]wire.Entry{entries[:2], journals[2]} {
		if _, err := c.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: j}); err != nil {
			t.Fatal(err)
		}
	}
	r = retake(t, c, journalCopy(t, export), "S001-T09")[0]
	if r.Held != 4 || r.PassedOver != n-4 || r.Applied+r.Duplicate != 0 || r.FoldedThrough != last ||
		len(r.Problems) != n-4 || !strings.HasPrefix(r.Problems[0], entries[2].ID+": passed over: ") {
		t.Fatalf("retake after the third store pushed: %+v; want 4 held, %d passed over, named", r, n-4)
	}
}

// TestTwoStoresJournalsInOneBatch: a batch brings the journals of two
// stores that replaced the till's one after the other. The chain restarts
// at the earlier's first entry and folds it; the later's waits and folds
// at the next push. Neither is kept as an orphan of a replaced store, as
// the earlier was when the later's first entry, read last, was taken for
// the restart.
func TestTwoStoresJournalsInOneBatch(t *testing.T) {
	ctx := context.Background()
	s, entries := ingestFixture(t)
	journals := replacedStores(entries)
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: journals[0]}); err != nil {
		t.Fatal(err)
	}
	both := append(slices.Clone(journals[1]), journals[2]...)
	res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: both})
	if err != nil || res.FoldedThrough != journals[1][2].ID {
		t.Fatalf("two stores' journals in one batch: %+v, %v; want folded through the earlier's last entry", res, err)
	}
	for _, x := range res.Results {
		if x.Status != wire.Applied {
			t.Fatalf("two stores' journals in one batch: %+v; want all applied", res.Results)
		}
	}
	if res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: journals[2]}); err != nil || res.FoldedThrough != journals[2][1].ID {
		t.Fatalf("the later store's push again: %+v, %v; want folded through its last entry", res, err)
	}
	if rej, err := s.Rejected(ctx); err != nil || len(rej) != 0 {
		t.Fatalf("rejected: %+v, %v; want none", rej, err)
	}
}

// TestRetakeTakesARefusedEntryAlone: the last of a till's entries head
// office B lacks is one the decoder refuses (finer than a point counts)
// but whose chain link is the till's: head office A kept it as rejected,
// on the chain. Alone in the retake's last batch, B keeps it the same way
// and folds through it, so the till's next entry does not wait behind it
// for ever. The retake had ingested a batch only for the entries the
// decoder took, and left such an entry out.
func TestRetakeTakesARefusedEntryAlone(t *testing.T) {
	ctx := context.Background()
	a, entries := ingestFixture(t)
	fine := entries[0]
	fine.ID = "S001-T09-00000000000000000000000008"
	fine.CheckID, fine.Prev, fine.Points = fine.ID, entries[6].ID, dec("0.0000000005")
	fine.Lots = []store.LotChange{{LotID: fine.ID, Delta: fine.Points, Create: true, ActiveFrom: fine.CreatedAt}}
	all := append(slices.Clip(entries), fine)
	data, _ := json.Marshal(&wire.Batch{TillID: "S001-T09", Entries: all})
	pushed, err := wire.DecodeBatch(data) // as a push: the decoder refuses the last
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Ingest(ctx, pushed)
	if err != nil || res.FoldedThrough != fine.ID || res.Results[7].Status != wire.Rejected {
		t.Fatalf("head office A: %+v, %v; want the last entry rejected, folded through", res, err)
	}
	export := exportPages(t, a, 100, len(all))

	b, _ := ingestFixture(t)
	if _, err := b.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	r := retake(t, b, journalCopy(t, export), "S001-T09")[0]
	if r.Held != 7 || r.Rejected != 1 || r.Applied+r.Duplicate+r.Conflict != 0 || r.FoldedThrough != fine.ID || r.Waiting != 0 ||
		len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], fine.ID+": rejected: ") {
		t.Fatalf("retake: %+v; want 7 held, the refused entry kept as rejected and folded through", r)
	}
	if got, want := readIngestState(t, b), readIngestState(t, a); got != want {
		t.Fatalf("head office B: %+v, want A's %+v", got, want)
	}
}
