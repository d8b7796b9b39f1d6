package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/sync/headoffice"
)

// TestTillSilentPastTheRetentionLoadsAfresh: head office keeps its change
// log 48 h. Of two tills of a store, one is cut off while the other sells
// and ERP corrects a card; two days pass and maintenance prunes the log.
// The silent till, back, is told to load its replica afresh (the changes
// since its cursor are gone) and ends with head office's balances; the
// till that kept syncing goes on with its deltas.
func TestTillSilentPastTheRetentionLoadsAfresh(t *testing.T) {
	ctx := context.Background()
	h, pa := retentionHO(t)
	pb := newProxy(t, h.hs.URL)
	a := newTill(t, h, pa, "S001-T91", "S001", 0)
	b := newTill(t, h, pb, "S001-T92", "S001", 0)
	syncEach(t, a, b)
	pb.down.Store(true)
	a.sell(t, card13, basket(), "")
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "while-silent", Card: "2900000000025", Points: decimal.NewFromInt(17), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	syncEach(t, a)
	if _, err := h.srv.Maintain(ctx); err != nil { // the mark
		t.Fatal(err)
	}
	// The till that keeps syncing does so after the mark too: silent
	// since before it, it would be past the retention as well.
	syncEach(t, a)
	h.clock.Add(49 * time.Hour)
	st, err := h.srv.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	syncEach(t, a)
	if s := a.c.Status(); s.Resets != 0 {
		t.Errorf("the till that kept syncing was reset: %+v", s)
	}
	before, xid := cursorOf(t, b)
	horizon := horizonOf(t, h)
	pb.down.Store(false)
	syncEach(t, b)
	sameBalances(t, h, b, allCards(t, h))
	sameBalances(t, h, a, allCards(t, h))
	// Its cursor is older than the horizon unless another test's
	// transaction held the mark back to it: then nothing it needed was
	// deleted and its delta goes on.
	want := 0
	if xid < horizon {
		want = 1
	}
	t.Logf("%d change rows pruned, horizon %d; the silent till's cursor %s", st.ChangesPruned, horizon, before)
	if n := b.c.Status().Resets; n != want {
		t.Errorf("the silent till (cursor %s, horizon %d) was reset %d times, want %d", before, horizon, n, want)
	}
}
