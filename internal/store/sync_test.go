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

// TestOfflineRedeemLimit on the demo: before any feed nothing (the first
// load has not brought the rules); card 13 has 300 spendable; with a card
// cap of 100 and a till cap of 120, a sale redeeming 66 leaves the card 34
// and another card 54; an old feed allows nothing.
func TestOfflineRedeemLimit(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	l, why, err := s.OfflineRedeemLimit(ctx, "2900000000018", demoNow)
	if err != nil || !l.IsZero() || why != OfflineFirstLoad {
		t.Fatalf("no limits saved: %s %q %v, want 0 (%s)", l, why, err, OfflineFirstLoad)
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

// TestRepushAfterRestore: head office restored from a backup lost the
// acknowledged entries after its watermark; RepushAfter makes PendingChain
// offer them again, in order and linked, acknowledged or not, with
// entries written meanwhile; AdvanceRepush moves the position only over
// entries acknowledged right after it and ends the re-push at the last
// entry. The journal rows keep acked = 1 and no balance moves.
func TestRepushAfterRestore(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	card := "2900000000018" // 500 points on the demo
	credit := func() string {
		t.Helper()
		ids, err := s.Append(ctx, []Entry{{CheckID: "c", CardCode: card, Kind: KindCorrection, Points: dec("1")}})
		if err != nil {
			t.Fatal(err)
		}
		return ids[0]
	}
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, credit())
	}
	// The first stays unacknowledged (refused, say): it is pending before
	// and during the re-push.
	if err := s.MarkAcked(ctx, ids[1:]); err != nil {
		t.Fatal(err)
	}
	total := func(want string) {
		t.Helper()
		b, err := s.Spendable(ctx, card, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		if b.Total.String() != want {
			t.Fatalf("card balance %s, want %s: a re-push must not move it", b.Total, want)
		}
	}
	chain := func(limit int, want ...string) {
		t.Helper()
		pend, err := s.PendingChain(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pend {
			got = append(got, p.ID)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("pending chain %v, want %v", got, want)
		}
		for _, p := range pend {
			var prev string
			for i, id := range ids {
				if id == p.ID && i > 0 {
					prev = ids[i-1]
				}
			}
			if p.Prev != prev {
				t.Fatalf("entry %s: prev %q, want %q", p.ID, p.Prev, prev)
			}
		}
		if n, err := s.PendingCount(ctx); err != nil || (len(want) < limit && n != len(want)) {
			t.Fatalf("PendingCount = %d, %v; want %d", n, err, len(want))
		}
	}
	position := func(want string, active bool) {
		t.Helper()
		after, ok, err := s.Repush(ctx)
		if err != nil || after != want || ok != active {
			t.Fatalf("re-push position %q active %v (%v), want %q active %v", after, ok, err, want, active)
		}
	}
	total("505")
	chain(10, ids[0])
	position("", false)

	// Head office's watermark after the restore is ids[1].
	if err := s.RepushAfter(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	position(ids[1], true)
	chain(10, ids[0], ids[2], ids[3], ids[4])
	total("505")
	ids = append(ids, credit()) // a sale while re-pushing: unacknowledged anyway
	chain(10, ids[0], ids[2], ids[3], ids[4], ids[5])
	chain(2, ids[0], ids[2])
	if err := s.MarkAcked(ctx, ids[:1]); err != nil {
		t.Fatal(err)
	}
	chain(2, ids[2], ids[3])

	// An acknowledgement that is not right after the position moves nothing.
	if err := s.AdvanceRepush(ctx, []string{ids[3], ids[4]}); err != nil {
		t.Fatal(err)
	}
	position(ids[1], true)
	if err := s.AdvanceRepush(ctx, []string{ids[2], ids[3]}); err != nil {
		t.Fatal(err)
	}
	position(ids[3], true)
	chain(10, ids[4], ids[5])
	if err := s.MarkAcked(ctx, ids[4:]); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceRepush(ctx, ids[4:]); err != nil {
		t.Fatal(err)
	}
	position("", false) // through the last entry: done
	chain(10)
	total("506")

	// A head office with no watermark: everything, the first without prev.
	if err := s.RepushAfter(ctx, ""); err != nil {
		t.Fatal(err)
	}
	position("", true)
	chain(100, ids...)
	if err := s.AdvanceRepush(ctx, ids); err != nil {
		t.Fatal(err)
	}
	position("", false)
	for _, e := range mustJournal(t, s) {
		if !e.Acked {
			t.Errorf("entry %s lost its acknowledgement", e.ID)
		}
	}
	total("506")

	// Head office has it all: nothing to send again.
	if err := s.RepushAfter(ctx, ids[len(ids)-1]); err != nil {
		t.Fatal(err)
	}
	position("", false)
	chain(10)

	for _, bad := range []string{"nonsense", "S002-T01-" + ids[0][len("S001-T01-"):], ids[0] + "x"} {
		if err := s.RepushAfter(ctx, bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("RepushAfter(%q) = %v, want an error naming it", bad, err)
		}
	}
	position("", false)
}

func mustJournal(t *testing.T, s *Store) []Entry {
	t.Helper()
	es, err := s.JournalAfter(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
