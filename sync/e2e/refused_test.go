package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
	"tillagent/sync/wire"
)

// conflictFixture: head office with the demo, a till that loaded it and
// sold once (a redemption and an accrual, unsent), and head office holding
// the first of the two entries with other content (a conflict, permanent
// until someone fixes head office), which it returns.
func conflictFixture(t *testing.T, id string, opt func(*client.Options)) (*ho, *proxy, *till, store.PendingEntry) {
	t.Helper()
	ctx := context.Background()
	h, p, a := loadedTill(t, id, opt)
	a.sell(t, card13, powder("1"), "100")
	pend, err := a.st.PendingChain(ctx, 10)
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending: %d, %v", len(pend), err)
	}
	other := wire.Entry{Entry: pend[0].Entry, Prev: pend[0].Prev}
	other.Note = "another copy"
	if res := post(t, &env{p: p}, a, wire.Batch{TillID: a.id, Entries: []wire.Entry{other}}); res.Results[0].Status != wire.Applied {
		t.Fatalf("other copy: %+v", res.Results)
	}
	return h, p, a, pend[0]
}

// TestRefusedEntryDoesNotStopThePull: head office holds one of the till's
// entries with other content (a conflict, never acknowledged); the till's
// next cycle still pushes the rest and pulls the feed (an ERP correction
// made meanwhile reaches its replica), and the refused entry stays
// pending and shown in Status.
func TestRefusedEntryDoesNotStopThePull(t *testing.T) {
	ctx := context.Background()
	h, _, a, _ := conflictFixture(t, "S001-T61", nil)
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "refused-1", Card: card13, Points: decimal.NewFromInt(40), Reason: "goodwill"}); err != nil {
		t.Fatal(err)
	}
	// More sales after it than a batch holds (3): the push goes past the
	// refused entry.
	a.sell(t, card13, powder("1"), "")
	a.sell(t, card13, powder("2"), "")
	a.sell(t, card13, powder("3"), "")
	pend, err := a.st.PendingChain(ctx, 20)
	if err != nil || len(pend) < 5 {
		t.Fatalf("pending: %d, %v", len(pend), err)
	}
	last := pend[len(pend)-1].ID
	err = a.c.SyncNow(ctx)
	if err == nil || !strings.Contains(err.Error(), pend[0].ID+" conflict") || client.FailureKind(err) != client.FailRefused {
		t.Fatalf("cycle: %v, want the conflict of %s (FailRefused)", err, pend[0].ID)
	}
	st := a.c.Status()
	if st.RefusedCount != 1 || len(st.Refused) != 1 || !strings.Contains(st.Refused[0], pend[0].ID) || st.Backlog != 1 {
		t.Fatalf("status: refused %v (%d), backlog %d, want the one conflict pending", st.Refused, st.RefusedCount, st.Backlog)
	}
	if st.LastPull.IsZero() || st.Folded != last {
		t.Fatalf("status: last pull %v, watermark %q, want a pull and the watermark at %s", st.LastPull, st.Folded, last)
	}
	if wm, _ := a.st.FoldedThrough(ctx); wm != last {
		t.Fatalf("till watermark %q, want %s (from the feed)", wm, last)
	}
	b, err := a.st.Spendable(ctx, card13, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	if hb := hoBalances(t, h)[card13]; b.Total.String() != hb {
		t.Fatalf("card 13 after the cycle: till %s, head office %s (with the correction): the feed was not pulled", b.Total, hb)
	}
	// The next cycle sends it again and is refused again: still shown.
	if err := a.c.SyncNow(ctx); err == nil || a.c.Status().RefusedCount != 1 {
		t.Fatalf("second cycle: %v, refused %d, want the conflict again", err, a.c.Status().RefusedCount)
	}
}

// TestRefusedEntryDuringARepush: a re-push of the whole journal meets an
// entry head office holds with other content. The re-push position stops
// there, so the acknowledged entries after it stay pending; the cycle
// still sends every entry once, ends, shows the conflict and pulls.
func TestRefusedEntryDuringARepush(t *testing.T) {
	ctx := context.Background()
	h, p, a := loadedTill(t, "S001-T62", nil)
	for i := 1; i <= 8; i++ {
		a.sell(t, card13, powder(fmt.Sprint(i)), "")
	}
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	es := a.journal(t)
	if len(es) < 8 {
		t.Fatalf("journal: %d entries, want at least 8", len(es))
	}
	bad := es[2].ID
	if _, err := h.srv.DB().Exec(ctx, `UPDATE journal SET body = jsonb_set(body::jsonb, '{note}', '"changed"')::json, digest = '\x00'::bytea
		WHERE id = $1`, bad); err != nil {
		t.Fatal(err)
	}
	if err := a.st.RepushAfter(ctx, ""); err != nil {
		t.Fatal(err)
	}
	pushes := 0
	var mu sync.Mutex
	p.onJournal = func(*http.Request) { mu.Lock(); pushes++; mu.Unlock() }
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := a.c.SyncNow(cctx)
	if cctx.Err() != nil {
		t.Fatalf("the cycle did not end: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), bad+" conflict") {
		t.Fatalf("cycle: %v, want the conflict of %s", err, bad)
	}
	st := a.c.Status()
	if st.RefusedCount != 1 || !st.Repushing || st.LastPull.IsZero() {
		t.Fatalf("status: refused %v, repushing %v, last pull %v: want the one conflict, the re-push still on, a pull", st.Refused, st.Repushing, st.LastPull)
	}
	// Batches of 3: every entry sent once, none twice.
	mu.Lock()
	defer mu.Unlock()
	if want := (len(es) + 2) / 3; pushes != want {
		t.Fatalf("%d pushes for %d entries, want %d (each entry once)", pushes, len(es), want)
	}
}

// TestRepushAcknowledgingTheRefusedEntryEndsTheCycleClean: the cycle's push
// is refused an entry (a conflict); before its pull, support settles the
// conflict keeping head office's copy and resets the till's feed. The
// pull's re-push then sends the entry again, head office answers it a
// duplicate, and the till acknowledges it: the cycle ends without error,
// nothing refused. It reported the push's conflict, which no longer held,
// and the till showed "failing" until its next cycle (the chaos soak, seed
// 31337, found the cycle-level half; TestRefusalOfAnEntryNoLongerPendingIsDropped
// in sync/client pins the push's).
func TestRepushAcknowledgingTheRefusedEntryEndsTheCycleClean(t *testing.T) {
	ctx := context.Background()
	h, p, a, bad := conflictFixture(t, "S001-T65", nil)
	var once sync.Once
	var settled, reset int
	p.onFeed = func(*http.Request) {
		once.Do(func() {
			settled, _ = erpCall(t, h, "POST", "/v1/erp/conflicts/"+bad.ID, map[string]string{"keep": "head_office", "reason": "ticket 7"})
			reset, _ = erpCall(t, h, "POST", "/v1/erp/tills/"+a.id+"/reset-feed", nil)
		})
	}
	err := a.c.SyncNow(ctx)
	if settled != 200 || reset != 200 {
		t.Fatalf("settling the conflict: %d, resetting the feed: %d", settled, reset)
	}
	if err != nil {
		t.Fatalf("cycle: %v, want no error: the re-push acknowledged %s", err, bad.ID)
	}
	st := a.c.Status()
	if st.State != "ok" || st.RefusedCount != 0 || st.Backlog != 0 || st.Resets != 1 || !st.ReplicaLoaded {
		t.Fatalf("status: state %q, refused %v (%d), backlog %d, resets %d, replica loaded %v: want ok, nothing refused or pending, the replica loaded afresh",
			st.State, st.Refused, st.RefusedCount, st.Backlog, st.Resets, st.ReplicaLoaded)
	}
	sameBalances(t, h, a, []string{card13})
}
