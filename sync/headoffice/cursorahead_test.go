package headoffice

import (
	"context"
	"strconv"
	"testing"

	"tillagent/sync/wire"
)

// A head office restored from a physical backup (a base backup and its
// WAL) runs on the cluster's xid counter as it stood at the restore point:
// the lost server had gone on, and the cursors it gave ERP and the tills
// name xids the restored cluster has not reached again. What it writes
// next gets xids below them. This cluster cannot be rewound here, so the
// tests give cursors 5,000 xids past its counter, the state such a
// restore leaves; a live cluster never gives one.
func cursorAhead(t *testing.T, s *Server) string {
	t.Helper()
	var next uint64
	if err := s.db.QueryRow(context.Background(), `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&next); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(next+5000, 10)
}

// TestExportCursorAheadOfTheDatabaseStartsAgain: ERP's export cursor from
// the lost server is answered reset (as a cursor from another cluster
// is), and the export from the start gives every entry, those written
// after the restore included. Before, the export from it skipped them
// with no word to ERP (found by the QA pass). A cursor of this cluster
// goes on as before.
func TestExportCursorAheadOfTheDatabaseStartsAgain(t *testing.T) {
	ctx := context.Background()
	s, entries := ingestFixture(t)
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	exportPages(t, s, 100, len(entries))
	here, err := s.ExportJournal(ctx, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.ExportJournal(ctx, here.Cursor, 100); err != nil || p.Reset || len(p.Entries) != len(entries)-3 {
		t.Fatalf("from this cluster's cursor %s: %d entries, reset %v (%v); want the other %d", here.Cursor, len(p.Entries), p.Reset, err, len(entries)-3)
	}
	lost := cursorAhead(t, s) + ".7"
	p, err := s.ExportJournal(ctx, lost, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Reset || len(p.Entries) != len(entries) {
		t.Fatalf("from a cursor ahead of the database %s: %d entries, reset %v; want reset and every one of the %d from the start", lost, len(p.Entries), p.Reset, len(entries))
	}
}

// TestFeedCursorAheadOfTheDatabaseResets: a till's cursor from the lost
// server is a feed reset, with the watermark, so the till re-pushes what
// head office lacks and loads its replica afresh; before, its deltas
// skipped the changes written since the restore until the counter passed
// the cursor (found by the QA pass). Its own cursor goes on.
func TestFeedCursorAheadOfTheDatabaseResets(t *testing.T) {
	ctx := context.Background()
	s, entries := ingestFixture(t)
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries}); err != nil {
		t.Fatal(err)
	}
	f, err := s.Feed(ctx, "S001-T09", "")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Feed(ctx, "S001-T09", f.Cursor); err != nil || again.Reset {
		t.Fatalf("from its own cursor %s: reset %v (%v), want the delta", f.Cursor, again.Reset, err)
	}
	lost := cursorAhead(t, s)
	reset, err := s.Feed(ctx, "S001-T09", lost)
	if err != nil {
		t.Fatal(err)
	}
	if !reset.Reset || reset.Replica.FoldedThrough["S001-T09"] != entries[len(entries)-1].ID {
		t.Fatalf("from a cursor ahead of the database %s: reset %v, watermark %v; want a reset with the watermark %s",
			lost, reset.Reset, reset.Replica.FoldedThrough, entries[len(entries)-1].ID)
	}
}
