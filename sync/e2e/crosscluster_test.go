package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"tillagent/sync/headoffice"
)

// TestRestoreIntoAnotherCluster: head office's database is restored into
// a new PostgreSQL cluster (a pg_dump of the lost server), whose xids are
// far behind the ones stored in the journal and change rows. Simulated by
// moving every stored xid ahead of the cluster's, then restarting head
// office. It renumbers them: the ERP export's cursor from before starts
// the export again (every entry once, none missing), and the till, reset,
// loads its replica once and then gets empty deltas — not the whole replica
// on every cycle, and not an export that waits for the new cluster's xids.
func TestRestoreIntoAnotherCluster(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T92", nil)
	e := &env{h: h, p: p, a: tl}
	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameJournal(t, e)
	exportCaughtUp(t, h)
	before := exportPages(t, h, "")
	if len(before.ids) == 0 {
		t.Fatal("nothing exported before the restore")
	}

	db := h.srv.DB()
	for _, table := range []string{"journal", "changes"} {
		if _, err := db.Exec(ctx, `UPDATE `+table+` SET xid = (xid::text::bigint + 100000000)::text::xid8`); err != nil {
			t.Fatal(err)
		}
	}
	h.restart(p)
	var ahead bool
	db = h.srv.DB()
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journal WHERE xid >= pg_current_xact_id())
		OR EXISTS (SELECT 1 FROM changes WHERE xid >= pg_current_xact_id())`).Scan(&ahead); err != nil || ahead {
		t.Fatalf("xids ahead of the cluster after the restart: %v %v", ahead, err)
	}

	// The ERP job asks from its cursor of before: the export starts again.
	exportCaughtUp(t, h)
	again := exportPages(t, h, before.cursor)
	if !again.reset {
		t.Errorf("export from the cursor of before the restore: no reset")
	}
	for id := range before.ids {
		if again.ids[id] != 1 {
			t.Errorf("entry %s exported %d times after the restore, want once", id, again.ids[id])
		}
	}

	// The till is reset once, loads, and then its deltas are empty.
	tl.sell(t, card13, powder("1"), "30")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync after the restore: %v", err)
	}
	if st := tl.c.Status(); st.Resets != 1 || st.Backlog != 0 {
		t.Errorf("status after the restore: %+v, want one feed reset and no backlog", st)
	}
	// Delivery is at least once (a change still held back by an older
	// transaction comes again), but the deltas must go quiet: with the
	// old cluster's xids they would carry everything on every cycle.
	quiet := false
	for deadline := time.Now().Add(15 * time.Second); !quiet && time.Now().Before(deadline); {
		recs := tl.c.Status().ImportedRecs
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		quiet = tl.c.Status().ImportedRecs == recs
	}
	if !quiet {
		t.Errorf("the till's deltas never went quiet after the reload (%d records imported)", tl.c.Status().ImportedRecs)
	}
	sameJournal(t, e)
	sameBalances(t, h, tl, []string{card13, "2900000000049"})
	// And the export goes on from its new cursor with the sale after it.
	want := len(tl.journal(t)) - len(before.ids)
	next := exportPages(t, h, again.cursor)
	for deadline := time.Now().Add(15 * time.Second); len(next.ids) < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		next = exportPages(t, h, again.cursor)
	}
	if next.reset || len(next.ids) != want {
		t.Errorf("export after the new cursor: %d entries (reset %v), want the last sale's %d", len(next.ids), next.reset, want)
	}
}

type exported struct {
	ids    map[string]int
	cursor string
	reset  bool
}

// exportPages reads the ERP journal export from cursor to its end.
func exportPages(t *testing.T, h *ho, cursor string) exported {
	t.Helper()
	out := exported{ids: map[string]int{}, cursor: cursor}
	for page := 0; page < 100; page++ {
		ex, err := h.srv.ExportJournal(context.Background(), out.cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		out.reset = out.reset || ex.Reset
		for _, en := range ex.Entries {
			out.ids[entryID(t, en)]++
		}
		out.cursor = ex.Cursor
		if !ex.More {
			return out
		}
	}
	t.Fatal("journal export did not end")
	return out
}

func entryID(t *testing.T, e headoffice.ExportedEntry) string {
	t.Helper()
	var v struct{ ID string }
	if err := json.Unmarshal(e.Entry, &v); err != nil || v.ID == "" {
		t.Fatalf("exported entry %s: %v", e.Entry, err)
	}
	return v.ID
}
