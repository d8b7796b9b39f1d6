package store

import (
	"context"
	"os"
	"strings"
	"testing"

	"tillagent/checkout"
)

// demoLot returns lot id of the demo replica with remaining set to rem.
func demoLot(t *testing.T, id, rem string) ReplicaLot {
	t.Helper()
	data, err := os.ReadFile(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseReplicaFile(demoPath(t), data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Lots {
		if l.ID == id {
			p := mustPoints(t, rem)
			l.Remaining = &p
			return l
		}
	}
	t.Fatalf("demo replica has no lot %s", id)
	return ReplicaLot{}
}

func mustPoints(t *testing.T, v string) checkout.Points {
	t.Helper()
	p, err := checkout.ParsePoints(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// feed imports what head office would send after folding this till's
// entries through wm: the given lots and the watermark.
func feed(t *testing.T, s *Store, wm string, lots ...ReplicaLot) {
	t.Helper()
	r := &Replica{Version: ReplicaFormatVersion, Lots: lots, FoldedThrough: map[string]string{s.TillID(): wm}}
	if _, err := s.Import(context.Background(), r); err != nil {
		t.Fatalf("import feed folded through %s: %v", wm, err)
	}
	if got, err := s.FoldedThrough(context.Background()); err != nil || got != wm {
		t.Fatalf("FoldedThrough = %q, %v; want %q", got, err, wm)
	}
}

// foldedSale13 is the replica after head office folded sale13: L-13-1 100 →
// 0, L-13-2 200 → 150, and the accrual's lot (named by its entry id) with 40.
func foldedSale13(t *testing.T, accrualID string) []ReplicaLot {
	act, exp := demoNow.AddDate(0, 0, 14), demoNow.AddDate(0, 0, 194)
	return []ReplicaLot{demoLot(t, "L-13-1", "0"), demoLot(t, "L-13-2", "150"),
		{ID: accrualID, Card: "2900000000018", Points: mustPoints(t, "40"), AccruedAt: demoNow, ActiveFrom: &act, ExpiresAt: &exp, CheckID: "C1"}}
}

func wantBalance(t *testing.T, s *Store, step, spend, total, debt string) {
	t.Helper()
	b, err := s.Spendable(context.Background(), "2900000000018", demoNow)
	if err != nil {
		t.Fatal(err)
	}
	if b.Spendable.String() != spend || b.Total.String() != total || b.Debt.String() != debt {
		t.Fatalf("%s: balance %+v, want spendable %s total %s debt %s", step, b, spend, total, debt)
	}
}

// TestAckThenFeed: head office acknowledges a sale before its replica feed
// arrives. The balance must not jump back to the replica's old lots in
// between (that was a double-spend window).
func TestAckThenFeed(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "after sale", "150", "390", "0")
	if err := s.MarkAcked(ctx, ids); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "acked, feed not yet here", "150", "390", "0")
	feed(t, s, ids[1], foldedSale13(t, ids[1])...)
	wantBalance(t, s, "feed folded the sale", "150", "390", "0")
}

// TestFeedThenAck: the feed that folds a sale arrives before the ack. The
// folded lots and the still-unacknowledged entries must not both count.
func TestFeedThenAck(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s, ids[1], foldedSale13(t, ids[1])...)
	wantBalance(t, s, "feed before ack", "150", "390", "0")
	if p, _ := s.Pending(ctx, 10); len(p) != 2 {
		t.Fatalf("pending = %d entries, want 2: the feed does not acknowledge", len(p))
	}
	if err := s.MarkAcked(ctx, ids); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "acked", "150", "390", "0")
}

// TestPartialFeed: the feed folds the first of two sales; the second still
// counts from the journal, acknowledged or not.
func TestPartialFeed(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	a, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Append(ctx, []Entry{{CheckID: "C2", CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-50"), AmountKop: 5000,
		Lots: []LotChange{{LotID: "L-13-2", Delta: dec("-50")}}}})
	if err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "two sales", "100", "340", "0")
	if err := s.MarkAcked(ctx, append(append([]string{}, a...), b...)); err != nil {
		t.Fatal(err)
	}
	feed(t, s, a[1], foldedSale13(t, a[1])...)
	// 0 + (150 − 50) active, 200 + 40 later: only C2 comes from the journal.
	wantBalance(t, s, "first sale folded", "100", "340", "0")
	feed(t, s, b[0], demoLot(t, "L-13-2", "100"))
	wantBalance(t, s, "both folded", "100", "340", "0")
	// A later entry counts again on top of the watermark.
	if _, err := s.Append(ctx, []Entry{{CheckID: "C3", CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-30"),
		Lots: []LotChange{{LotID: "L-13-2", Delta: dec("-30")}}}}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "after the watermark", "70", "310", "0")
}

// TestFeedNeverCountsALotTwice: a feed that already carries a lot created by
// an entry after its watermark (an inconsistent feed) counts it once.
func TestFeedNeverCountsALotTwice(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	ids, err := s.Append(ctx, sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	lots := foldedSale13(t, ids[1])
	// The accrual's lot is in the feed, but its watermark stops at the redemption.
	feed(t, s, ids[0], lots...)
	wantBalance(t, s, "lot in replica and journal", "150", "390", "0")
}

func TestFoldedThroughValidated(t *testing.T) {
	for _, wm := range []string{"junk", "S002-T01-01JD0000000000000000000000", "S001-T01-"} {
		r := &Replica{Version: ReplicaFormatVersion, FoldedThrough: map[string]string{"S001-T01": wm}}
		if err := r.Validate(nil); err == nil || !strings.Contains(err.Error(), "folded_through") {
			t.Errorf("watermark %q: %v, want a folded_through error", wm, err)
		}
	}
	s := mustDemo(t)
	ids, err := s.Append(context.Background(), sale13("C1"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Replica{Version: ReplicaFormatVersion, FoldedThrough: map[string]string{"S001-T01": ids[0]}}
	if err := r.Validate(nil); err != nil {
		t.Fatalf("a real journal id as watermark: %v", err)
	}
}

// TestUsedUpLotsCountWhenTheJournalNamesThem: a quote reads a card's live
// lots, and by key the used-up ones this till's unfolded entries name.
// L-13-1 is used up at head office (another till spent it); this till then
// gives 30 points back to it (a return), and spends 5 from it and gives
// them back. The 30 show at once, and the 5 out and in leave no debt.
func TestUsedUpLotsCountWhenTheJournalNamesThem(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, &Replica{Version: ReplicaFormatVersion, Lots: []ReplicaLot{demoLot(t, "L-13-1", "0")}}); err != nil {
		t.Fatal(err)
	}
	// 100 of L-13-1 gone: L-13-2's 200 active, L-13-3's 200 not yet (demo).
	wantBalance(t, s, "L-13-1 used up", "200", "400", "0")
	if _, err := s.Append(ctx, []Entry{{CheckID: "R1", CardCode: "2900000000018", Kind: KindReversal, Points: dec("30"), AmountKop: -3000,
		Lots: []LotChange{{LotID: "L-13-1", Delta: dec("30")}}}}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "30 given back to the used-up lot", "230", "430", "0")
	if _, err := s.Append(ctx, []Entry{
		{CheckID: "C2", CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-5"), AmountKop: 500,
			Lots: []LotChange{{LotID: "L-13-1", Delta: dec("-5")}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []Entry{
		{CheckID: "R2", CardCode: "2900000000018", Kind: KindReversal, Points: dec("5"), AmountKop: -500,
			Lots: []LotChange{{LotID: "L-13-1", Delta: dec("5")}}},
	}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, s, "5 spent from it and given back", "230", "430", "0")
}
