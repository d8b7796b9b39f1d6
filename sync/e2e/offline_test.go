package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// TestOfflineCapsBoundTheOverdraft: head office publishes a card cap of 150,
// a till cap of 200 and a maximum offline age of 24 h. Three partitioned
// tills each want 250 of card 13's 300 points; the cap holds each to 150,
// the till cap then holds till A's family card to 50, a second redemption
// of card 13 on the same till gets 0, and a till 25 h past its last feed
// may not redeem at all. After reconnecting the overdraft is 3 × 150 − 300
// = 150 ≤ (k − 1) × cap = 300, and it is flagged.
func TestOfflineCapsBoundTheOverdraft(t *testing.T) {
	ctx := context.Background()
	off := store.OfflineLimits{CardCap: decimal.NewFromInt(150), TillCap: decimal.NewFromInt(200), MaxAge: 24 * time.Hour}
	h := startHOWith(t, pgDSN(t), off)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	var tills []*till
	for i := 0; i < 3; i++ {
		tl := newTill(t, h, p, fmt.Sprintf("S001-T%02d", 30+i), "S001", 0)
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		tills = append(tills, tl)
	}
	// Not synced yet: no rules saved, the limit is the spendable balance.
	p.down.Store(true)
	limit := func(tl *till, card string, at time.Time) (string, string) {
		t.Helper()
		l, why, err := tl.st.OfflineRedeemLimit(ctx, card, at)
		if err != nil {
			t.Fatal(err)
		}
		return l.String(), why
	}
	for _, tl := range tills {
		l, why := limit(tl, card13, tl.now)
		if l != "150" || why != store.OfflineCardCap {
			t.Fatalf("till %s: card 13 offline limit %s (%s), want 150 (card cap)", tl.id, l, why)
		}
		tl.sell(t, card13, powder("1"), l)
		if l, why := limit(tl, card13, tl.now); l != "0" || why != store.OfflineCardCap {
			t.Fatalf("till %s: card 13 after spending the cap: %s (%s), want 0 (card cap)", tl.id, l, why)
		}
	}
	a := tills[0]
	if l, why := limit(a, "2700000000014", a.now); l != "50" || why != store.OfflineTillCap {
		t.Fatalf("family card on till A after 150 spent: %s (%s), want 50 (till cap 200)", l, why)
	}
	a.sell(t, "2700000000014", basket(), "50")
	if l, why := limit(a, "2700000000014", a.now.Add(25*time.Hour)); l != "0" || why != store.OfflineTooLong {
		t.Fatalf("25 h after the last feed: %s (%s), want 0 (offline too long)", l, why)
	}
	// Accrual goes on: the sales above earned points that are in the journal.
	p.down.Store(false)
	for round := 0; round < 2; round++ {
		for _, tl := range tills {
			if err := tl.c.SyncNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	ods, err := h.srv.Overdrafts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	over := decimal.Zero
	for _, o := range ods {
		over = over.Add(o.Points.Decimal())
	}
	if over.String() != "150" || len(ods) == 0 {
		t.Fatalf("flagged overdraft %s in %d records, want 150 = 3 × 150 − 300", over, len(ods))
	}
	// Synced: nothing unfolded, the card cap is free again, bounded by the balance.
	if l, why := limit(a, card13, a.now); l != "0" || why != "" {
		t.Fatalf("card 13 after sync (overdrawn): %s (%s), want 0 with no offline rule binding", l, why)
	}
}
