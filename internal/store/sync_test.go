package store

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
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

// TestImportFeedKeepsTheGood: a feed with a bad lot on card 13, a product
// with an unknown VAT rate and a good change of card 25 imports card 25;
// card 13 keeps its previous state whole (its other lots are left out
// too) and the refused records are saved with their errors. Card 13 sent
// right replaces its saved copy; a retry of the saved product still fails
// and keeps it; a bad watermark refuses the whole feed.
func TestImportFeedKeepsTheGood(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	demo, err := ParseReplicaFile(demoPath(t), mustReadFile(t, demoPath(t)))
	if err != nil {
		t.Fatal(err)
	}
	feed := &Replica{Version: 1}
	for _, c := range demo.Cards {
		if c.Code == "2900000000018" || c.Code == "2900000000025" {
			feed.Cards = append(feed.Cards, c)
		}
	}
	for _, l := range demo.Lots {
		switch {
		case l.Card == "2900000000018":
			if l.ID == "L-13-2" {
				bad := checkout.MustPoints("999")
				l.Remaining = &bad
			}
			feed.Lots = append(feed.Lots, l)
		case l.ID == "L-20-1":
			half := checkout.MustPoints("50")
			l.Remaining = &half
			feed.Lots = append(feed.Lots, l)
		}
	}
	p := demo.Products[0]
	p.VAT = "vat99"
	feed.Products = []ReplicaProduct{p}
	_, rej, err := s.ImportFeed(ctx, feed, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, r := range rej {
		keys[r.Section+" "+r.Key] = r.Error
	}
	if len(rej) != 6 || !strings.Contains(keys[`lots id "L-13-2" of card "2900000000018"`], "remaining 999 outside 0..200") ||
		!strings.Contains(keys[`lots id "L-13-1" of card "2900000000018"`], "left out with its card") ||
		!strings.Contains(keys[`cards code "2900000000018"`], "remaining 999") || !strings.Contains(keys[`products id "1001"`], `vat "vat99"`) {
		t.Fatalf("rejected %v", keys)
	}
	bal := func(code string) string {
		b, err := s.Spendable(ctx, code, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		return b.Total.String()
	}
	if bal("2900000000025") != "50" || bal("2900000000018") != "500" {
		t.Fatalf("card 25 %s (want the new 50), card 13 %s (want its old 500)", bal("2900000000025"), bal("2900000000018"))
	}
	if saved, err := s.Rejected(ctx); err != nil || len(saved) != 6 {
		t.Fatalf("saved %d, %v", len(saved), err)
	}
	// Card 13 sent right: its saved copies go, the product stays, retried and still bad.
	good := &Replica{Version: 1}
	for _, c := range feed.Cards {
		if c.Code == "2900000000018" {
			good.Cards = append(good.Cards, c)
		}
	}
	for _, l := range demo.Lots {
		if l.Card == "2900000000018" {
			good.Lots = append(good.Lots, l)
		}
	}
	if _, rej, err = s.ImportFeed(ctx, good, nil, true); err != nil || len(rej) != 1 || rej[0].Section != "products" {
		t.Fatalf("after card 13 came right: %+v, %v; want only the product", rej, err)
	}
	if bal("2900000000018") != "500" {
		t.Fatalf("card 13: %s", bal("2900000000018"))
	}
	// The product sent right replaces it.
	p.VAT = "vat10"
	if _, rej, err = s.ImportFeed(ctx, &Replica{Version: 1, Products: []ReplicaProduct{p}}, nil, true); err != nil || len(rej) != 0 {
		t.Fatalf("after the product came right: %+v, %v", rej, err)
	}
	if _, _, err := s.ImportFeed(ctx, &Replica{Version: 1, FoldedThrough: map[string]string{"S001-T01": "x"}}, nil, true); err == nil {
		t.Fatal("a bad watermark did not refuse the feed")
	}
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
