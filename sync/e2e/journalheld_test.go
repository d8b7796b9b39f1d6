package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestTillDropsOnlyWhatEveryBackupHolds: head office holds the journal
// 72 h. A till sells and syncs, a maintenance run marks its watermark,
// and three hours later, after another sale, head office is backed up;
// the till sells once more. 72 h after the mark the till's delta says it
// may drop the entries before the marked watermark, and it does. Head
// office is then restored from the backup, which is younger than the
// hold: the till pushes again what the backup lacks, none of which it
// dropped, and both sides end with every entry and the same balances.
func TestTillDropsOnlyWhatEveryBackupHolds(t *testing.T) {
	ctx := context.Background()
	h := &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), hold: 72 * time.Hour}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	tl := newTill(t, h, p, "S001-T88", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	syncEach(t, tl)

	tl.sell(t, card13, powder("1"), "100")
	tl.sell(t, "2900000000049", basket(), "")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	marked, err := tl.st.FoldedThrough(ctx)
	if err != nil || marked == "" {
		t.Fatalf("watermark at the mark %q, %v", marked, err)
	}
	h.clock.Add(3 * time.Hour)
	tl.sell(t, "2900000000056", basket(), "")
	syncEach(t, tl)
	bk := takeBackup(t, h)
	tl.sell(t, card13, powder("1"), "30")
	syncEach(t, tl)

	made := tl.journal(t)
	sum := map[string]decimal.Decimal{}
	for _, en := range made {
		sum[en.CardCode] = sum[en.CardCode].Add(en.Points)
	}
	dropAll := demoNow.Add(10 * 365 * 24 * time.Hour) // the age is the sale service's rule, not this test's
	if n, err := tl.st.PruneJournal(ctx, dropAll, 1000); err != nil || n != 0 {
		t.Fatalf("pruned %d, %v before head office's hold has passed; want none", n, err)
	}

	h.clock.Add(72 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if held, err := tl.st.SyncState(ctx, "journal_held"); err != nil || held != marked {
		t.Fatalf("journal held %q, %v; want the watermark marked 72 h ago, %s", held, err, marked)
	}
	var before int
	for _, en := range made {
		if en.ID < marked {
			before++
		}
	}
	if n, err := tl.st.PruneJournal(ctx, dropAll, 1000); err != nil || n != before || n == 0 {
		t.Fatalf("pruned %d, %v; want the %d entries before %s", n, err, before, marked)
	}

	bk.restore(t, h, p)
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync after the restore: %v", err)
	}
	if st := tl.c.Status(); st.Resets != 1 || st.Repushing || st.Backlog != 0 {
		t.Errorf("status after the restore: %+v", st)
	}
	kept := map[string]string{}
	for _, en := range tl.journal(t) {
		kept[en.ID] = canonical(t, en)
	}
	if len(kept) != len(made)-before {
		t.Errorf("the till keeps %d entries, want %d", len(kept), len(made)-before)
	}
	got := exportAll(t, e)
	for deadline := time.Now().Add(15 * time.Second); len(got) < len(made) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got = exportAll(t, e)
	}
	for _, en := range made {
		g, ok := got[en.ID]
		switch {
		case !ok:
			t.Errorf("entry %s lost: not at head office after the restore", en.ID)
		case kept[en.ID] != "" && g != kept[en.ID]:
			t.Errorf("entry %s differs:\n head office %s\n till        %s", en.ID, g, kept[en.ID])
		}
	}
	if len(got) != len(made) {
		t.Errorf("head office holds %d entries, the till made %d", len(got), len(made))
	}
	for card, b := range hoBalances(t, h) {
		if want := decimal.RequireFromString(initial[card]).Add(sum[card]).String(); b != want {
			t.Errorf("card %s at head office: %s, want demo %s + the journal = %s", card, b, initial[card], want)
		}
	}
	sameBalances(t, h, tl, allCards(t, h))
}
