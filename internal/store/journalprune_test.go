package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPruneJournalKeepsWhatIsNeeded: an acknowledged entry goes only once
// it is before head office's journal_held, folded into the replica, older
// than the cut, no document of its check is kept, the replica has the lots
// it created, and it is not the predecessor of an unacknowledged one;
// never while a re-push is under way; the card's balance is the same
// before and after; the database itself refuses to delete an
// unacknowledged entry.
func TestPruneJournalKeepsWhatIsNeeded(t *testing.T) {
	ctx := context.Background()
	now := demoNow
	s := openAt(t, &now)
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatal(err)
	}
	append1 := func(es []Entry) []string {
		t.Helper()
		ids, err := s.Append(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	spend := func(check, pts string) []Entry {
		return []Entry{{CheckID: check, CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-" + pts),
			Lots: []LotChange{{LotID: "L-13-2", Delta: dec("-" + pts)}}}}
	}
	a := append1(sale13("C1"))      // no document: a sale recorded by the store alone
	b := append1(spend("C2", "10")) // its document is kept
	writeDoc(t, s, "C2", DocSale, "", 2, 1)
	c := append1(spend("C3", "5")) // never acknowledged
	e := append1(spend("C6", "2")) // old and acknowledged, past the watermark
	now = now.Add(400 * 24 * time.Hour)
	d := append1(spend("C4", "1")) // young
	if err := s.MarkAcked(ctx, append(append(append(append([]string{}, a...), b...), e...), d...)); err != nil {
		t.Fatal(err)
	}
	feed(t, s, c[0]) // the replica has folded a, b and c, not e
	cut := now.Add(-365 * 24 * time.Hour)
	balance := func(step string) string {
		t.Helper()
		bal, err := s.Spendable(ctx, "2900000000018", now)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return bal.Spendable.String() + "/" + bal.Total.String() + "/" + bal.Debt.String()
	}
	was := balance("before")
	prune := func(step string, want int, left ...string) {
		t.Helper()
		n, err := s.PruneJournal(ctx, cut, 1000)
		if err != nil || n != want {
			t.Fatalf("%s: pruned %d, %v; want %d", step, n, err, want)
		}
		es, err := s.JournalAfter(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.ID)
		}
		if strings.Join(got, " ") != strings.Join(left, " ") {
			t.Fatalf("%s: journal %v, want %v", step, got, left)
		}
		if b := balance(step); b != was {
			t.Fatalf("%s: balance %s, was %s", step, b, was)
		}
	}
	all := []string{a[0], a[1], b[0], c[0], e[0], d[0]}
	prune("head office has said nothing", 0, all...)

	if err := s.SetJournalHeld(ctx, "S002-T01-"+strings.TrimPrefix(a[1], "S001-T01-")); err == nil {
		t.Fatal("another till's id taken as the journal held")
	}
	if err := s.SetJournalHeld(ctx, a[1]); err != nil {
		t.Fatal(err)
	}
	prune("held before the sale's second entry", 1, all[1:]...)
	if err := s.SetJournalHeld(ctx, d[0]); err != nil {
		t.Fatal(err)
	}
	prune("C1's accrual made a lot the replica never had; C2's document still kept, C3 not acknowledged, C6 past the watermark, C4 young", 0, all[1:]...)
	feed(t, s, c[0], foldedSale13(t, a[1])[2]) // the lot (long expired: the balance stays)
	prune("C1's lot imported", 1, all[2:]...)
	if _, err := s.PruneDocs(ctx, cut, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.RepushAfter(ctx, ""); err != nil {
		t.Fatal(err)
	}
	prune("re-pushing", 0, all[2:]...)
	if err := s.endRepush(ctx); err != nil {
		t.Fatal(err)
	}
	prune("C2's document pruned, but its entry is the predecessor of C3's, not acknowledged", 0, all[2:]...)
	if _, err := s.w.ExecContext(ctx, `DELETE FROM journal WHERE id = ?`, c[0]); err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("deleting an unacknowledged entry: %v, want refused", err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM journal_lots WHERE entry_seq = (SELECT seq FROM journal WHERE id = ?)`, c[0]); err == nil {
		t.Fatal("deleting an unacknowledged entry's lots: want refused")
	}
	if err := s.MarkAcked(ctx, c); err != nil {
		t.Fatal(err)
	}
	prune("C3 acknowledged", 2, e[0], d[0])
	var lots int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM journal_lots WHERE entry_seq NOT IN (SELECT seq FROM journal)`).Scan(&lots); err != nil || lots != 0 {
		t.Fatalf("lots of deleted entries left: %d, %v", lots, err)
	}
	if k, err := s.JournalKept(ctx); err != nil || k.Pruned != 4 || k.HeldBefore != d[0] {
		t.Fatalf("journal kept %+v, %v; want 4 pruned, held before %s", k, err, d[0])
	}
	if k, err := s.JournalKept(ctx); err != nil || k.Lost || k.PrunedThrough != c[0] {
		t.Fatalf("journal kept %+v, %v; want nothing lost, pruned through %s", k, err, c[0])
	}
	// Head office restored from a backup older than its hold: its
	// watermark is behind what the till dropped.
	feed(t, s, a[1])
	if k, err := s.JournalKept(ctx); err != nil || !k.Lost || k.FoldedThrough != a[1] || k.PrunedThrough != c[0] {
		t.Fatalf("journal kept %+v, %v; want lost after %s through %s", k, err, a[1], c[0])
	}
	if err := s.SetJournalHeld(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if held, err := s.SyncState(ctx, journalHeldKey); err != nil || held != "" {
		t.Fatalf("journal held after forgetting: %q, %v", held, err)
	}
	// The ids go on from the newest, whatever went before it.
	if e := append1(spend("C5", "1")); e[0] <= d[0] {
		t.Fatalf("new id %s not after %s", e[0], d[0])
	}
}
