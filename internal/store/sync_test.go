package store

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestPendingChainLinksAcrossAcks: the predecessor of a pending entry is
// the entry written just before it, acknowledged or not.
func TestPendingChainLinksAcrossAcks(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 3; i++ {
		got, err := s.Append(ctx, []Entry{{CheckID: "c", CardCode: "x", Kind: KindCorrection, Points: dec("1")}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	if err := s.MarkAcked(ctx, ids[1:2]); err != nil {
		t.Fatal(err)
	}
	pend, err := s.PendingChain(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 2 || pend[0].ID != ids[0] || pend[0].Prev != "" || pend[1].ID != ids[2] || pend[1].Prev != ids[1] {
		t.Fatalf("pending chain %+v, want %s (prev none), %s (prev %s)", pend, ids[0], ids[2], ids[1])
	}
	if n, err := s.PendingCount(ctx); err != nil || n != 2 {
		t.Fatalf("PendingCount = %d, %v", n, err)
	}
	all, err := s.JournalAfter(ctx, ids[0], 10)
	if err != nil || len(all) != 2 || all[0].ID != ids[1] {
		t.Fatalf("JournalAfter(%s) = %v, %v", ids[0], all, err)
	}
}

// TestOfflineRedeemLimit on the demo: card 13 has 300 spendable; with a
// card cap of 100 and a till cap of 120, a sale redeeming 66 leaves the
// card 34 and another card 54; an old feed allows nothing.
func TestOfflineRedeemLimit(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	l, why, err := s.OfflineRedeemLimit(ctx, "2900000000018", demoNow)
	if err != nil || l.String() != "300" || why != "" {
		t.Fatalf("no limits saved: %s %q %v, want the spendable 300", l, why, err)
	}
	if err := s.SaveOfflineLimits(ctx, OfflineLimits{CardCap: dec("100"), TillCap: dec("120"), MaxAge: time.Hour}, demoNow); err != nil {
		t.Fatal(err)
	}
	if l, why, _ := s.OfflineRedeemLimit(ctx, "2900000000018", demoNow); l.String() != "100" || why != OfflineCardCap {
		t.Fatalf("card cap: %s %q", l, why)
	}
	if _, err := s.Append(ctx, []Entry{{CheckID: "c1", CardCode: "2900000000018", Kind: KindRedemption, Points: dec("-66"),
		Lots: []LotChange{{LotID: "L-13-1", Delta: dec("-66")}}}}); err != nil {
		t.Fatal(err)
	}
	if l, why, _ := s.OfflineRedeemLimit(ctx, "2900000000018", demoNow); l.String() != "34" || why != OfflineCardCap {
		t.Fatalf("card cap after 66: %s %q, want 34", l, why)
	}
	if l, why, _ := s.OfflineRedeemLimit(ctx, "2700000000014", demoNow); l.String() != "54" || why != OfflineTillCap {
		t.Fatalf("another card: %s %q, want 54 (till cap 120 − 66)", l, why)
	}
	if l, why, _ := s.OfflineRedeemLimit(ctx, "2700000000014", demoNow.Add(2*time.Hour)); !l.Equal(decimal.Zero) || why != OfflineTooLong {
		t.Fatalf("two hours after the feed: %s %q", l, why)
	}
}
