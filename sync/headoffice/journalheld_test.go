package headoffice

import (
	"context"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestJournalHeldIsTheWatermarkOfHoldAgo: with a hold of 72 h the
// maintenance runs mark each till's watermark at most every 72h/30, and a
// delta asked with held=1 carries the newest mark at least 72 h old: the
// watermark as it stood then, not as it is. Before any mark is that old,
// and to a till that does not ask, it carries none. Marks older than the
// one in use go; an idle till gets no new ones.
func TestJournalHeldIsTheWatermarkOfHoldAgo(t *testing.T) {
	ctx := context.Background()
	now := demoNow
	const hold = 72 * time.Hour
	s, err := Open(ctx, Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return now }, JournalHold: hold})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	for _, till := range []string{"S001-T01", "S001-T02"} { // T02 never pushes
		if _, err := s.Enrol(ctx, till, "S001"); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Snapshot(ctx, "S001-T01", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	held := func(step string, asked bool, want string) {
		t.Helper()
		f, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: snap.Cursor, Held: asked})
		if err != nil {
			t.Fatal(err)
		}
		if f.JournalHeld != want {
			t.Fatalf("%s: journal_held %q, want %q", step, f.JournalHeld, want)
		}
	}
	marks := func(step string, want int) {
		t.Helper()
		var n int
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal_marks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%s: %d marks, want %d", step, n, want)
		}
	}
	maintain := func() {
		t.Helper()
		if _, err := s.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lt := &lateTill{}
	e1 := lt.push(t, s, accrue("2900000000018", "10")).FoldedThrough
	maintain()
	marks("first run", 1)
	held("the mark is young", true, "")

	e2 := lt.push(t, s, accrue("2900000000018", "20")).FoldedThrough
	now = now.Add(time.Hour)
	maintain()
	marks("an hour on: under 72h/30 since the last mark", 1)
	now = now.Add(2 * time.Hour)
	maintain()
	marks("three hours on", 2)
	lt.push(t, s, accrue("2900000000018", "30"))

	now = demoNow.Add(hold)
	maintain()
	marks("72 h on", 3)
	held("72 h on", true, e1)
	held("a till that does not ask", false, "")
	now = demoNow.Add(hold + 3*time.Hour)
	held("the second mark 72 h old", true, e2)
	maintain()
	marks("the first mark dropped; no new one while the watermark stands", 2)
	now = now.Add(10 * hold)
	maintain()
	marks("long after, idle: the newest mark kept", 1)
	if e1 == "" || e2 <= e1 {
		t.Fatalf("watermarks %q, %q", e1, e2)
	}
}
