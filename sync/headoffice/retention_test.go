package headoffice

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestChangeLogPrunedPastTheRetention: with a retention of 48 h, a
// maintenance run marks the oldest transaction running; one 49 h later
// deletes the change rows older than that mark and makes it the feed's
// horizon. A delta from a cursor older than the horizon answers reset (the
// till loads afresh); from a cursor at or past it, the delta as before.
// Without a retention nothing is marked or deleted.
func TestChangeLogPrunedPastTheRetention(t *testing.T) {
	ctx := context.Background()
	now := demoNow
	s, err := Open(ctx, Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return now }, ChangeRetention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	old, err := s.Snapshot(ctx, "S001-T01", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "before-mark", Card: "2900000000018", Points: dec("11"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := s.db.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if st, err := s.Maintain(ctx); err != nil || st.ChangesPruned != 0 {
		t.Fatalf("first run: %+v, %v; want a mark and nothing pruned", st, err)
	}
	if count(`SELECT count(*) FROM change_marks`) != 1 || count(`SELECT count(*) FROM feed_horizon`) != 0 {
		t.Fatal("first run: want one mark, no horizon")
	}
	mid, err := s.Snapshot(ctx, "S001-T01", "", 100) // a cursor after the mark
	if err != nil {
		t.Fatal(err)
	}
	changes := count(`SELECT count(*) FROM changes`)

	now = now.Add(49 * time.Hour)
	st, err := s.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM changes`); int64(n) != int64(changes)-st.ChangesPruned {
		t.Errorf("%d change rows left, want %d less %d pruned", n, changes, st.ChangesPruned)
	}
	if n := count(`SELECT count(*) FROM changes c, feed_horizon h WHERE c.xid < h.oldest`); n != 0 {
		t.Errorf("%d change rows older than the horizon left", n)
	}
	if count(`SELECT count(*) FROM feed_horizon`) != 1 || count(`SELECT count(*) FROM change_marks`) != 2 {
		t.Fatal("second run: want the horizon set and the two marks kept (the one used, the new one)")
	}
	var horizon string
	if err := s.db.QueryRow(ctx, `SELECT oldest::text FROM feed_horizon`).Scan(&horizon); err != nil {
		t.Fatal(err)
	}
	// Another test's transaction anywhere in the cluster may hold the
	// mark's xmin back to the old cursor: then nothing it needs is gone
	// and its delta goes on.
	_, oldXid, _ := parseCursor(old.Cursor)
	_, hXid, _ := parseCursor(horizon)
	f, err := s.Feed(ctx, "S001-T01", old.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if f.Reset != (oldXid < hXid) {
		t.Errorf("delta from cursor %s, horizon %s: reset %v", old.Cursor, horizon, f.Reset)
	}
	if oldXid < hXid && (st.ChangesPruned == 0 || len(f.Replica.Cards) > 0) {
		t.Errorf("a reset delta: %d pruned, %d cards sent; want rows pruned and only the reset", st.ChangesPruned, len(f.Replica.Cards))
	}
	t.Logf("cursor %s, horizon %s: %d rows pruned, reset %v", old.Cursor, horizon, st.ChangesPruned, f.Reset)
	if f, err := s.Feed(ctx, "S001-T01", mid.Cursor); err != nil || f.Reset {
		t.Errorf("delta from the cursor taken after the mark: %+v, %v; want no reset", f, err)
	}
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := fmt.Sprintf("\nheadoffice_changes_pruned_total %d\n", st.ChangesPruned); st.ChangesPruned > 0 && !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q", want)
	}

	// No retention: no marks, nothing deleted, no horizon.
	plain := openTest(t)
	if st, err := plain.Maintain(ctx); err != nil || st.ChangesPruned != 0 {
		t.Fatal(st, err)
	}
	var marks int
	if err := plain.db.QueryRow(ctx, `SELECT count(*) FROM change_marks`).Scan(&marks); err != nil || marks != 0 {
		t.Errorf("without a retention: %d marks, %v", marks, err)
	}
}
