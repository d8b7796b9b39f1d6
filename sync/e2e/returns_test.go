package e2e

import (
	"context"
	"testing"
	"time"

	"tillagent/checkout"
)

// returnLines records return id of the given lines of sale on the till,
// after the earlier returns prev, as the agent does, and returns what it
// returned.
func (tl *till) returnLines(t *testing.T, id string, sale checkout.Result, prev, lines []checkout.ReturnLine) checkout.ReturnResult {
	t.Helper()
	ctx := context.Background()
	rin, err := tl.st.ReturnInput(ctx, sale, tl.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rin.Previous, rin.Lines = prev, lines
	rr, err := checkout.Return(rin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.st.RecordReturn(ctx, id, sale, rr); err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestPartialReturnsOfASaleAllFold: a real till spends 250 points of card
// 13 over two lots on four packs and returns them in three returns (1, 1,
// then 2 packs). Head office checks every return against the sale: a
// till's own returns never give back more than the sale spent, so all of
// them fold, none is rejected, and the card ends where it began, on the
// till and at head office alike.
func TestPartialReturnsOfASaleAllFold(t *testing.T) {
	ctx := context.Background()
	h, _, tl := loadedTill(t, "S001-T01", nil)
	before := hoBalances(t, h)[card13]

	sale := tl.sell(t, card13, powder("4"), "250")
	if sale.Redemption == nil || len(sale.Redemption.LotsConsumed) < 2 {
		t.Fatalf("the sale's redemption %+v: want 250 points from two lots", sale.Redemption)
	}
	line := func(qty string) []checkout.ReturnLine {
		return []checkout.ReturnLine{{No: 1, Qty: checkout.MustQty(qty)}}
	}
	restored := checkout.Points{}
	for i, r := range []struct{ prev, qty string }{{"", "1"}, {"1", "1"}, {"2", "2"}} {
		var prev []checkout.ReturnLine
		if r.prev != "" {
			prev = line(r.prev)
		}
		rr := tl.returnLines(t, "S001-T01-R"+string(rune('1'+i)), sale, prev, line(r.qty))
		for _, c := range rr.Cards {
			restored = restored.Add(c.Restored)
		}
	}
	if restored.String() != "250" {
		t.Fatalf("the three returns gave back %s points, want the 250 spent", restored)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tl.c.Status(); st.Backlog != 0 || len(st.Refused) != 0 {
		t.Fatalf("after the sync: %+v, want every entry acknowledged, none refused", st)
	}
	rejected, err := h.srv.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 0 {
		t.Fatalf("head office rejected %+v", rejected)
	}
	if got := hoBalances(t, h)[card13]; got != before {
		t.Errorf("card 13 at head office after the sale and its returns: %s, want %s as before", got, before)
	}
	b, err := tl.st.Spendable(ctx, card13, tl.now)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total.String() != before {
		t.Errorf("card 13 on the till: %s, want %s", b.Total, before)
	}
}
