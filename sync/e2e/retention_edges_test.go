package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// The change log's retention end to end: real tills over HTTP, head
// office on PostgreSQL. Other tests' transactions anywhere in the cluster
// may hold a mark's xid back, so each reset count is asserted against the
// cursor and the horizon actually written.

// retentionHO is head office keeping its change log 48 h, the demo
// imported, a proxy before it.
func retentionHO(t *testing.T) (*ho, *proxy) {
	t.Helper()
	h := &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), retention: 48 * time.Hour}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	return h, newProxy(t, h.hs.URL)
}

func horizonOf(t *testing.T, h *ho) uint64 {
	t.Helper()
	var v uint64
	if err := h.srv.DB().QueryRow(context.Background(), `SELECT coalesce((SELECT oldest::text::bigint FROM feed_horizon), 0)`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func cursorOf(t *testing.T, tl *till) (string, uint64) {
	t.Helper()
	c, err := tl.st.SyncState(context.Background(), "feed_cursor")
	if err != nil || c == "" {
		t.Fatalf("till %s: cursor %q, %v", tl.id, c, err)
	}
	x, err := strconv.ParseUint(c[strings.LastIndex(c, ":")+1:], 10, 64)
	if err != nil {
		t.Fatalf("cursor %q: %v", c, err)
	}
	return c, x
}

func allCards(t *testing.T, h *ho) []string {
	var all []string
	for c := range hoBalances(t, h) {
		all = append(all, c)
	}
	return all
}

func correctAll(t testing.TB, h *ho, tag string, cards ...string) {
	t.Helper()
	for _, c := range cards {
		if _, err := h.srv.Correct(context.Background(), headoffice.Correction{ID: tag + "-" + c, Card: c, Points: decimal.NewFromInt(4), Reason: "qa"}); err != nil {
			t.Error(err)
		}
	}
}

var someCards = []string{card13, "2900000000025", "2900000000032", "2900000000049", "2900000000056"}

// TestPagedDeltaInterruptedByPrune: a till pulls a delta in pages of 2;
// between its first and second page, 49 h pass and maintenance prunes the
// change log up to a mark taken after the till's cursor was. The till
// either goes on (cursor at or past the horizon) or is reset and loads
// afresh (behind it); either way the cycle succeeds and every balance is
// head office's. "held" keeps a transaction open from before the till's
// cursor to after the prune, so that the horizon cannot pass the cursor:
// a till that keeps syncing must not be reset.
func TestPagedDeltaInterruptedByPrune(t *testing.T) {
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			ctx := context.Background()
			h, p := retentionHO(t)
			tl := newTillWith(t, h, p, "S001-T71", "S001", 0, func(o *client.Options) { o.DeltaPage = 2 })
			syncEach(t, tl)
			if held {
				tx, err := h.srv.DB().Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
					t.Fatal(err)
				}
			}
			syncEach(t, tl) // the cursor
			_, cur := cursorOf(t, tl)
			correctAll(t, h, "paged", someCards...)
			if _, err := h.srv.Maintain(ctx); err != nil { // the mark
				t.Fatal(err)
			}
			var mu sync.Mutex
			pruned := false
			var horizon uint64
			p.onFeed = func(r *http.Request) {
				q := r.URL.Query()
				mu.Lock()
				defer mu.Unlock()
				if q.Get("snapshot") == "1" || q.Get("after") == "" || pruned {
					return
				}
				pruned = true
				horizon = passAndPrune(t, h)
			}
			if err := tl.c.SyncNow(ctx); err != nil {
				t.Fatalf("sync with a prune between pages: %v", err)
			}
			p.onFeed = nil
			mu.Lock()
			defer mu.Unlock()
			if !pruned {
				t.Fatal("test setup: the delta had a single page")
			}
			want := 0
			if cur < horizon {
				want = 1
			}
			st := tl.c.Status()
			if st.Resets != want {
				t.Errorf("cursor %d, horizon %d: %d resets, want %d", cur, horizon, st.Resets, want)
			}
			t.Logf("cursor %d, horizon %d: %d resets, %d delta pages", cur, horizon, st.Resets, st.DeltaPages)
			sameBalances(t, h, tl, allCards(t, h))
			syncEach(t, tl)
			if n := tl.c.Status().Resets; n != want {
				t.Errorf("after one more cycle: %d resets, want %d", n, want)
			}
		})
	}
}

// TestLongTransactionReachesTillsAcrossPrune: a transaction takes 7
// points from card 13's lot and writes its change row, then stays open
// over a mark and a prune 49 h later, while the till keeps syncing. When
// it commits, the till's next delta carries it: a late commit is never
// lost to the prune, and the syncing till is not reset.
func TestLongTransactionReachesTillsAcrossPrune(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTill(t, h, p, "S001-T72", "S001", 0)
	syncEach(t, tl)
	long, err := h.srv.DB().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	for _, q := range []string{`UPDATE lots SET remaining = remaining - 7 WHERE card = $1 AND lot_id = 'L-13-1'`,
		`INSERT INTO changes (section, key) VALUES ('cards', $1)`} {
		if _, err := long.Exec(ctx, q, card13); err != nil {
			t.Fatal(err)
		}
	}
	tl.sell(t, "2900000000025", basket(), "")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	h.clock.Add(49 * time.Hour)
	st, err := h.srv.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if n := tl.c.Status().Resets; n != 0 {
		t.Errorf("the till that kept syncing was reset %d times", n)
	}
	sameBalances(t, h, tl, allCards(t, h))
	t.Logf("%d rows pruned, horizon %d", st.ChangesPruned, horizonOf(t, h))
}

// TestFirstLoadSpanningPrune: a till's first load in pages of 3 cards;
// after its first page ERP corrects a card already loaded and maintenance
// marks, before its last page 49 h pass and maintenance prunes. The delta
// from the first page's cursor is reset if that cursor is behind the
// horizon (the till loads again) or goes on; either way the cycle succeeds
// and the till ends with head office's balances, then syncs without reset.
func TestFirstLoadSpanningPrune(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTill(t, h, p, "S001-T73", "S001", 0)
	var mu sync.Mutex
	pages := 0
	var horizon uint64
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("snapshot") != "1" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		pages++
		switch pages {
		case 2:
			correctAll(t, h, "first-load", "2600000000017") // on page 1
			if _, err := h.srv.Maintain(ctx); err != nil {
				t.Error(err)
			}
		case 3:
			horizon = passAndPrune(t, h)
		}
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("first load across a prune: %v", err)
	}
	p.onFeed = nil
	mu.Lock()
	defer mu.Unlock()
	if pages < 3 {
		t.Fatalf("test setup: %d snapshot pages", pages)
	}
	// Every snapshot page after the third belongs to a reload.
	resets := tl.c.Status().Resets
	if resets > 1 || (resets == 1) != (pages > 3) {
		t.Errorf("%d resets, %d snapshot pages (horizon %d)", resets, pages, horizon)
	}
	t.Logf("%d snapshot pages, %d resets, horizon %d", pages, resets, horizon)
	sameBalances(t, h, tl, allCards(t, h))
	syncEach(t, tl)
	if n := tl.c.Status().Resets; n != resets {
		t.Errorf("one more cycle reset the till again (%d resets)", n)
	}
}

// TestCrossClusterRestoreWithMarks: head office keeps its change log 48
// h, has marked and pruned (a horizon), and is restored into another
// cluster (every stored xid, the marks' and horizon's too, ahead of the
// cluster's). At start it drops the marks and the horizon; the till is
// reset once, and afterwards, through a new mark and prune, keeps syncing
// without another reset.
func TestCrossClusterRestoreWithMarks(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTill(t, h, p, "S001-T74", "S001", 0)
	syncEach(t, tl)
	tl.sell(t, card13, powder("1"), "100")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	tl.sell(t, "2900000000049", basket(), "")
	syncEach(t, tl)
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if horizonOf(t, h) == 0 {
		t.Fatal("test setup: no horizon")
	}
	db := h.srv.DB()
	for _, q := range []string{
		`UPDATE journal SET xid = (xid::text::bigint + 100000000)::text::xid8`,
		`UPDATE changes SET xid = (xid::text::bigint + 100000000)::text::xid8`,
		`UPDATE change_marks SET oldest = (oldest::text::bigint + 100000000)::text::xid8`,
		`UPDATE feed_horizon SET oldest = (oldest::text::bigint + 100000000)::text::xid8`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	h.restart(p)
	db = h.srv.DB()
	var marks, horizons int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM change_marks), (SELECT count(*) FROM feed_horizon)`).Scan(&marks, &horizons); err != nil {
		t.Fatal(err)
	}
	if marks != 0 || horizons != 0 {
		t.Errorf("after the restore into another cluster: %d marks, %d horizons left", marks, horizons)
	}
	tl.sell(t, card13, powder("1"), "30")
	syncEach(t, tl)
	if n := tl.c.Status().Resets; n != 1 {
		t.Errorf("after the restore: %d resets, want 1", n)
	}
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	tl.sell(t, "2900000000025", basket(), "")
	syncEach(t, tl)
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if n := tl.c.Status().Resets; n != 1 {
		t.Errorf("after a prune past the restore: %d resets, want still 1", n)
	}
	sameJournal(t, &env{h: h, p: p, a: tl})
	sameBalances(t, h, tl, allCards(t, h))
}

// TestHorizonAloneAheadOfTheCluster: only the horizon is ahead of the
// cluster's xids (a restore into a new cluster of a database whose change
// log and journal were quiet since the last mark). Left as it is, every
// cursor would be behind it and every delta reset, for good; head office
// drops it at start, and the till, reset once, then syncs without reset.
func TestHorizonAloneAheadOfTheCluster(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTill(t, h, p, "S001-T75", "S001", 0)
	syncEach(t, tl)
	if _, err := h.srv.DB().Exec(ctx, `INSERT INTO feed_horizon (oldest) VALUES ((pg_current_xact_id()::text::bigint + 100000000)::text::xid8)`); err != nil {
		t.Fatal(err)
	}
	h.restart(p)
	if n := horizonOf(t, h); n != 0 {
		t.Errorf("horizon %d ahead of the cluster kept after the restart", n)
	}
	for i := 0; i < 3; i++ {
		syncEach(t, tl)
	}
	if n := tl.c.Status().Resets; n > 1 {
		t.Errorf("%d resets after the restart, want at most 1", n)
	}
	sameBalances(t, h, tl, allCards(t, h))
}

// TestRestoreBackupTakenBeforePrune: head office (48 h) marks, is backed
// up, the till sells and syncs, 49 h pass and maintenance prunes; head
// office is restored from the backup (its marks, its change rows, no
// horizon), ERP resets the till's feed, and maintenance prunes again (from
// the backup's mark) and once more 49 h later. The till is reset once (by
// ERP), its journal and balances end as head office's.
func TestRestoreBackupTakenBeforePrune(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTill(t, h, p, "S001-T76", "S001", 0)
	e := &env{h: h, p: p, a: tl}
	syncEach(t, tl)
	tl.sell(t, card13, powder("1"), "50")
	syncEach(t, tl)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	bk := takeBackup(t, h)
	tl.sell(t, "2900000000025", basket(), "")
	syncEach(t, tl)
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	bk.restore(t, h, p)
	if n := horizonOf(t, h); n != 0 {
		t.Errorf("horizon %d after restoring a backup that had none", n)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	st, err := h.srv.Maintain(ctx) // prunes from the backup's mark
	if err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	tl.sell(t, "2900000000032", basket(), "")
	syncEach(t, tl)
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	if n := tl.c.Status().Resets; n != 1 {
		t.Errorf("%d resets, want the ERP reset only", n)
	}
	t.Logf("prune after the restore: %d rows", st.ChangesPruned)
	sameJournal(t, e)
	sameBalances(t, h, tl, allCards(t, h))
}

// TestTwoHeadOfficesPruneWhileTillsSync: two head-office processes on one
// database, a till on each and a third silent on the first. Both run
// maintenance every 13 h for 4 days while the two tills sell and sync: they
// are never reset; the silent one, back, is reset at most once, and all
// three end with head office's balances.
func TestTwoHeadOfficesPruneWhileTillsSync(t *testing.T) {
	ctx := context.Background()
	h1, p1 := retentionHO(t)
	h2 := &ho{t: t, dsn: h1.dsn, clock: h1.clock, retention: h1.retention}
	h2.start()
	t.Cleanup(h2.stop)
	p2 := newProxy(t, h2.hs.URL)
	a := newTill(t, h1, p1, "S001-T77", "S001", 0)
	b := newTill(t, h2, p2, "S001-T78", "S001", 0)
	pc := newProxy(t, h1.hs.URL)
	c := newTill(t, h1, pc, "S001-T79", "S001", 0)
	syncEach(t, a, b, c)
	pc.down.Store(true)
	for i := 0; i < 8; i++ {
		a.sell(t, someCards[i%len(someCards)], basket(), "")
		b.sell(t, someCards[(i+2)%len(someCards)], basket(), "")
		correctAll(t, h2, fmt.Sprint("two-", i), someCards[(i+1)%len(someCards)])
		syncEach(t, a, b)
		var wg sync.WaitGroup
		for _, h := range []*ho{h1, h2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.srv.Maintain(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		syncEach(t, a, b)
		h1.clock.Add(13 * time.Hour)
	}
	for _, tl := range []*till{a, b} {
		if n := tl.c.Status().Resets; n != 0 {
			t.Errorf("till %s kept syncing and was reset %d times", tl.id, n)
		}
	}
	pc.down.Store(false)
	syncEach(t, c)
	if n := c.c.Status().Resets; n > 1 {
		t.Errorf("the silent till was reset %d times", n)
	}
	t.Logf("horizon %d; silent till reset %d times", horizonOf(t, h1), c.c.Status().Resets)
	syncEach(t, a, b)
	all := allCards(t, h1)
	sameBalances(t, h1, a, all)
	sameBalances(t, h1, b, all)
	sameBalances(t, h1, c, all)
}

// TestInterruptedPagedDeltaResumedAfterPrune: a till's delta in pages of
// 2 is cut off after its first page (head office unreachable); while it is
// away, 49 h pass and maintenance prunes. The till resumes the delta from
// its saved position: reset if its cursor is behind the horizon (the saved
// delta dropped, the replica loaded afresh), or the delta goes on; either
// way it ends with head office's balances and no delta in progress.
func TestInterruptedPagedDeltaResumedAfterPrune(t *testing.T) {
	ctx := context.Background()
	h, p := retentionHO(t)
	tl := newTillWith(t, h, p, "S001-T70", "S001", 0, func(o *client.Options) { o.DeltaPage = 2 })
	syncEach(t, tl)
	_, cur := cursorOf(t, tl)
	correctAll(t, h, "cut", someCards...)
	if _, err := h.srv.Maintain(ctx); err != nil { // the mark
		t.Fatal(err)
	}
	var mu sync.Mutex
	cut := false
	p.onFeed = func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if q := r.URL.Query(); q.Get("snapshot") != "1" && q.Get("after") != "" && !cut {
			cut = true
			p.down.Store(true)
		}
	}
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("the delta went through although head office became unreachable")
	}
	p.onFeed = nil
	if raw, _ := tl.st.SyncState(ctx, "feed_delta"); raw == "" {
		t.Fatal("test setup: no paged delta in progress saved")
	}
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	horizon := horizonOf(t, h)
	p.down.Store(false)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("resuming the delta after the prune: %v", err)
	}
	want := 0
	if cur < horizon {
		want = 1
	}
	if n := tl.c.Status().Resets; n != want {
		t.Errorf("cursor %d, horizon %d: %d resets, want %d", cur, horizon, n, want)
	}
	if raw, _ := tl.st.SyncState(ctx, "feed_delta"); raw != "" {
		t.Errorf("a paged delta still in progress after the cycle: %s", raw)
	}
	t.Logf("cursor %d, horizon %d, %d resets", cur, horizon, tl.c.Status().Resets)
	sameBalances(t, h, tl, allCards(t, h))
}

// passAndPrune moves head office's clock past the 48 h retention, runs its
// maintenance, and returns the feed's horizon then.
func passAndPrune(t *testing.T, h *ho) uint64 {
	t.Helper()
	h.clock.Add(49 * time.Hour)
	if _, err := h.srv.Maintain(context.Background()); err != nil {
		t.Error(err)
	}
	return horizonOf(t, h)
}
