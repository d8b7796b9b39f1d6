package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// openAt opens a store whose clock is *now.
func openAt(t *testing.T, now *time.Time) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01",
		BusyTimeout: 2 * time.Second, Clock: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeDoc writes a finished document (pending when fd is 0) at the
// store's clock.
func writeDoc(t *testing.T, s *Store, id string, kind DocKind, original string, fd uint32, lines int) {
	t.Helper()
	ctx := context.Background()
	result, receipt, answer := docJSON(lines)
	if _, err := s.BeginDoc(ctx, Doc{ID: id, Kind: kind, IdemKey: "k-" + id, RequestSHA: "sha", OriginalID: original, Result: result, Receipt: receipt}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, id, []byte(`{"fd":1}`)); err != nil {
		t.Fatal(err)
	}
	if fd == 0 {
		return
	}
	if err := s.FinishDoc(ctx, id, fd, 77, answer); err != nil {
		t.Fatal(err)
	}
}

// TestPruneDocsKeepsWhatAReturnNeeds: documents older than the cut are
// emptied, a sale with its returns and never without them; a sale whose
// return is newer than the cut, or still pending, and a pending sale stay
// whole; an emptied document keeps its id, key, state and fiscal number.
func TestPruneDocsKeepsWhatAReturnNeeds(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	writeDoc(t, s, "S1", DocSale, "", 1, 3)
	writeDoc(t, s, "S2", DocSale, "", 2, 3)
	writeDoc(t, s, "R2", DocReturn, "S2", 3, 1)
	writeDoc(t, s, "S3", DocSale, "", 4, 3)
	writeDoc(t, s, "S4", DocSale, "", 0, 3) // pending: the printer never told
	writeDoc(t, s, "S6", DocSale, "", 5, 3)
	writeDoc(t, s, "R6", DocReturn, "S6", 0, 1) // a pending return of an old sale
	now = now.Add(30 * 24 * time.Hour)
	cut := now.Add(-time.Hour)
	writeDoc(t, s, "R3", DocReturn, "S3", 6, 1) // a return after the cut
	writeDoc(t, s, "S5", DocSale, "", 7, 3)

	// One sale a run: S1 first (the oldest), then S2 with its return.
	if n, err := s.PruneDocs(ctx, cut, 1); err != nil || n != 1 {
		t.Fatalf("first run: %d, %v; want 1", n, err)
	}
	if n, err := s.PruneDocs(ctx, cut, 1); err != nil || n != 2 {
		t.Fatalf("second run: %d, %v; want 2 (S2 and R2)", n, err)
	}
	if n, err := s.PruneDocs(ctx, cut, 100); err != nil || n != 0 {
		t.Fatalf("third run: %d, %v; want nothing left", n, err)
	}
	result, receipt, _ := docJSON(3)
	for _, id := range []string{"S1", "S2", "R2"} {
		d, err := s.DocByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.PrunedMS != now.UnixMilli() || len(d.Result) != 0 || len(d.Receipt) != 0 || d.Answer != nil || d.Checkpoint != nil {
			t.Errorf("%s not emptied: pruned %d, %d+%d+%d bytes, checkpoint %q", id, d.PrunedMS, len(d.Result), len(d.Receipt), len(d.Answer), d.Checkpoint)
		}
		if d.State != DocDone || d.FD == 0 || d.FP != 77 || d.IdemKey != "k-"+id {
			t.Errorf("%s lost its identity: %+v", id, d)
		}
	}
	for _, id := range []string{"S3", "R3", "S4", "S5", "S6", "R6"} {
		d, err := s.DocByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.PrunedMS != 0 || len(d.Receipt) == 0 || d.Checkpoint == nil {
			t.Errorf("%s emptied, want whole: pruned %d, receipt %q", id, d.PrunedMS, d.Receipt)
		}
		if d.Kind == DocSale && (!bytes.Equal(d.Result, result) || !bytes.Equal(d.Receipt, receipt)) {
			t.Errorf("%s changed: %q", id, d.Result)
		}
	}
	counts, err := s.DocCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts["sale_done"] != 5 || counts["sale_pending"] != 1 || counts["sale_pruned"] != 2 || counts["return_pruned"] != 1 || counts["return_done"] != 2 {
		t.Errorf("counts %v", counts)
	}

	// Once R3 is old too, S3 goes with it.
	now = now.Add(30 * 24 * time.Hour)
	if n, err := s.PruneDocs(ctx, now.Add(-time.Hour), 100); err != nil || n != 3 {
		t.Fatalf("a month later: %d, %v; want S3, R3 and S5", n, err)
	}
}

// TestPrunedSpaceIsReused: a year of documents pruned leaves their pages
// free, and the next year's documents fill them instead of growing the
// file.
func TestPrunedSpaceIsReused(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	pages := func() (total, free int64) {
		t.Helper()
		if err := s.w.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count)`).Scan(&total, &free); err != nil {
			t.Fatal(err)
		}
		return
	}
	batch := func(from int) {
		for i := from; i < from+400; i++ {
			writeDoc(t, s, fmt.Sprintf("S%d", i), DocSale, "", uint32(i+1), 30)
		}
		if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
	}
	batch(0)
	full, _ := pages()
	now = now.Add(400 * 24 * time.Hour)
	if n, err := s.PruneDocs(ctx, now.Add(-365*24*time.Hour), 1000); err != nil || n != 400 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	total, free := pages()
	t.Logf("400 sales: %d pages; pruned: %d free of %d", full, free, total)
	if free*2 < total {
		t.Errorf("pruning 400 sales freed %d of %d pages, want at least half", free, total)
	}
	batch(400)
	grown, _ := pages()
	t.Logf("400 more sales: %d pages", grown)
	if grown > full+full/4 {
		t.Errorf("the next 400 sales grew the file from %d to %d pages: the pruned pages were not reused", full, grown)
	}
}

// TestPruneDocsSameMillisecond: sales written in the same millisecond, one
// pruned a run, each goes with its own return, never with another's.
func TestPruneDocsSameMillisecond(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	for i := 0; i < 6; i++ {
		writeDoc(t, s, fmt.Sprintf("T%d", i), DocSale, "", uint32(2*i+1), 3)
		writeDoc(t, s, fmt.Sprintf("RT%d", i), DocReturn, fmt.Sprintf("T%d", i), uint32(2*i+2), 1)
	}
	now = now.Add(time.Hour)
	for run := 1; run <= 6; run++ {
		if n, err := s.PruneDocs(ctx, now, 1); err != nil || n != 2 {
			t.Fatalf("run %d: %d, %v; want a sale and its return", run, n, err)
		}
		pruned := 0
		for i := 0; i < 6; i++ {
			sd, err := s.DocByID(ctx, fmt.Sprintf("T%d", i))
			if err != nil {
				t.Fatal(err)
			}
			rd, err := s.DocByID(ctx, fmt.Sprintf("RT%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if (sd.PrunedMS == 0) != (rd.PrunedMS == 0) {
				t.Fatalf("run %d: sale T%d pruned %v, its return %v", run, i, sd.PrunedMS != 0, rd.PrunedMS != 0)
			}
			if sd.PrunedMS != 0 {
				pruned++
			}
		}
		if pruned != run {
			t.Fatalf("run %d: %d sales pruned", run, pruned)
		}
	}
}
