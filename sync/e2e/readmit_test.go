package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"tillagent/sync/client"
)

// TestTillEnrolledAfterTheBackup: a till is enrolled after head office's
// last backup, sells and syncs; head office is restored from the backup
// (no row, no entry of the till). With an enrolment key the till's next
// sync is admitted from its secret alone, no ERP step and no visit to the
// store: head office resets its feed, the till pushes its whole journal
// again and reloads, and both sides end with the till's journal entry for
// entry and the same balances. Without a key the till is refused (it must
// be enrolled again), and the error says so.
func TestTillEnrolledAfterTheBackup(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		name := "keyed"
		if !keyed {
			name = "unkeyed"
		}
		t.Run(name, func(t *testing.T) { enrolledAfterBackup(t, keyed) })
	}
}

func enrolledAfterBackup(t *testing.T, keyed bool) {
	ctx := context.Background()
	h := &ho{t: t, dsn: pgDSN(t)}
	if keyed {
		h.enrolKey = []byte(strings.Repeat("0123456789abcdef", 2))
	}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	bk := takeBackup(t, h)

	tl := newTill(t, h, p, "S001-T91", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameJournal(t, e)

	bk.restore(t, h, p)
	tl.sell(t, card13, powder("1"), "30")
	err := tl.c.SyncNow(ctx)
	if !keyed {
		if err == nil || !strings.Contains(err.Error(), "401") || client.FailureKind(err) != client.FailUnauthorized {
			t.Fatalf("unkeyed till after the restore: %v, want refused (401, FailUnauthorized)", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("sync after the restore: %v", err)
	}
	st := tl.c.Status()
	if st.Resets != 1 || st.Repushes != 1 || st.Repushing || st.Backlog != 0 || st.State != "ok" || !strings.HasPrefix(st.Cursor, "e") {
		t.Errorf("status after the readmission: %+v; want its feed reset once, its journal pushed again, no backlog", st)
	}
	sameJournal(t, e)
	sum := map[string]decimal.Decimal{}
	es := tl.journal(t)
	for _, en := range es {
		sum[en.CardCode] = sum[en.CardCode].Add(en.Points)
		if !en.Acked {
			t.Errorf("entry %s not acknowledged", en.ID)
		}
	}
	for card, b := range hoBalances(t, h) {
		if want := decimal.RequireFromString(initial[card]).Add(sum[card]).String(); b != want {
			t.Errorf("card %s at head office: %s, want demo %s + the journal = %s", card, b, initial[card], want)
		}
	}
	sameBalances(t, h, tl, keys(initial))
	var hoWM string
	if err := h.srv.DB().QueryRow(ctx, `SELECT folded_through FROM tills WHERE till_id = $1`, tl.id).Scan(&hoWM); err != nil {
		t.Fatal(err)
	}
	if wm, _ := tl.st.FoldedThrough(ctx); wm != es[len(es)-1].ID || hoWM != wm {
		t.Errorf("watermarks: till %q, head office %q; want both at the last entry %s", wm, hoWM, es[len(es)-1].ID)
	}
}
