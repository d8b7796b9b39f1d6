package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
)

// TestConcurrentTillsNeverDeadlock: six tills each sell on the same three
// cards in a different order, then all push at once, several times over.
// Every push succeeds, PostgreSQL never aborts an ingest for a deadlock
// (Retries stays 0: cards are locked in code order), and the balances are
// the demo's plus the sum of every journal.
func TestConcurrentTillsNeverDeadlock(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	cards := []string{"2900000000018", "2900000000025", "2900000000049"}
	orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}, {0, 2, 1}, {1, 2, 0}}
	var tills []*till
	for i := range orders {
		tl := newTill(t, h, p, fmt.Sprintf("S001-T%02d", 10+i), "S001", 0)
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		tills = append(tills, tl)
	}
	for round := 0; round < 3; round++ {
		for i, tl := range tills {
			for _, c := range orders[i] {
				tl.sell(t, cards[c], basket(), "")
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(tills))
		for _, tl := range tills {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := tl.c.SyncNow(ctx); err != nil {
					errs <- fmt.Errorf("till %s: %w", tl.id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	if n := h.srv.Retries(); n != 0 {
		t.Errorf("%d ingest transactions were aborted (deadlock or serialization) and retried", n)
	}
	sum := map[string]decimal.Decimal{}
	n := 0
	for _, tl := range tills {
		for _, e := range tl.journal(t) {
			sum[e.CardCode] = sum[e.CardCode].Add(e.Points)
			n++
		}
	}
	if n != 6*3*3 {
		t.Fatalf("%d entries in the journals, want 54", n)
	}
	for card, b := range hoBalances(t, h) {
		want := decimal.RequireFromString(initial[card]).Add(sum[card])
		if !decimal.RequireFromString(b).Equal(want) {
			t.Errorf("card %s: %s at head office, want %s", card, b, want)
		}
	}
}
