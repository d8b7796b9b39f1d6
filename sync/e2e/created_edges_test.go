package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// TestTillEntryCreatingAHeldLot: a till whose store holds an accrual
// creating lot L-13-1, which card 13 already holds (a crafted or broken
// till: a real sale names its lot after its entry), pushes it through the
// real client over HTTP. Head office keeps it as rejected and the entries
// after it fold; the till's next cycle acknowledges it (a duplicate now),
// ends ok, and shows card 13 at head office's balance, the 60 points not
// counted on either side; another card's accrual after it counts on both.
func TestTillEntryCreatingAHeldLot(t *testing.T) {
	ctx := context.Background()
	h, _, tl := loadedTill(t, "S001-T71", nil)
	before := hoBalances(t, h)
	if _, err := tl.st.Append(ctx, []store.Entry{{CheckID: "S001-T71-X", CardCode: card13, Kind: store.KindAccrual, Points: decimal.NewFromInt(60),
		PurchaseKop: 100000, Lots: []store.LotChange{{LotID: "L-13-1", Create: true, Delta: decimal.NewFromInt(60), ActiveFrom: demoNow}}}}); err != nil {
		t.Fatal(err)
	}
	tl.sell(t, "2900000000049", basket(), "")
	first := tl.c.SyncNow(ctx)
	t.Logf("first cycle: %v", first)
	second := tl.c.SyncNow(ctx)
	if second != nil {
		t.Errorf("second cycle: %v, want ok (the rejected entry acknowledged as a duplicate)", second)
	}
	after := hoBalances(t, h)
	if after[card13] != before[card13] {
		t.Errorf("head office: card 13 %s → %s, want unchanged", before[card13], after[card13])
	}
	if after["2900000000049"] == before["2900000000049"] {
		t.Errorf("head office: the accrual after the rejected entry did not count")
	}
	for _, card := range []string{card13, "2900000000049"} {
		b, err := tl.st.Spendable(ctx, card, demoNow.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if b.Total.String() != after[card] {
			t.Errorf("the till shows card %s at %s, head office %s", card, b.Total, after[card])
		}
	}
	rej, err := h.srv.Rejected(ctx)
	if err != nil || len(rej) != 1 {
		t.Errorf("head office's rejected list: %d, %v; want the one entry", len(rej), err)
	}
	pending, err := tl.st.PendingCount(ctx)
	if err != nil || pending != 0 {
		t.Errorf("till backlog after: %d, %v", pending, err)
	}
}
