package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// Edges of the change log's retention (retention.go, migration 0014). The
// cluster-wide xmin may be held back by other tests' transactions, so
// every assertion about a reset branches on the cursor against the horizon
// actually written.

// retentionClock is a clock the tests move; safe for two servers and goroutines.
type retentionClock struct{ ns atomic.Int64 }

func newRetentionClock() *retentionClock {
	c := &retentionClock{}
	c.ns.Store(demoNow.UnixNano())
	return c
}
func (c *retentionClock) now() time.Time      { return time.Unix(0, c.ns.Load()).In(demoNow.Location()) }
func (c *retentionClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func openRetention(t *testing.T, dsn string, clock *retentionClock, retention time.Duration) *Server {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: dsn, ERPToken: "erp-secret", Clock: clock.now, ChangeRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func qaCount(t *testing.T, s *Server, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// qaHorizon is the feed's horizon (0: none).
func qaHorizon(t *testing.T, s *Server) uint64 {
	t.Helper()
	var h string
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce((SELECT oldest::text FROM feed_horizon), '0')`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func qaCursorXid(t *testing.T, c string) uint64 {
	t.Helper()
	_, x, err := parseCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestPruneDeletesTwentyFiveThousandRowsInChunks: 25,000 change rows of
// one transaction (three statements of 10,000 at most) are all deleted by
// one run once past the retention, and the count Maintain answers is the
// rows gone.
func TestPruneDeletesTwentyFiveThousandRowsInChunks(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	if _, err := s.db.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', 'qa-' || g FROM generate_series(1, 25000) g`); err != nil {
		t.Fatal(err)
	}
	var rowsXid uint64
	if err := s.db.QueryRow(ctx, `SELECT max(xid)::text::bigint FROM changes`).Scan(&rowsXid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Maintain(ctx); err != nil { // the mark
		t.Fatal(err)
	}
	clock.add(49 * time.Hour)
	before := qaCount(t, s, `SELECT count(*) FROM changes`)
	start := time.Now()
	st, err := s.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	h := qaHorizon(t, s)
	left := qaCount(t, s, `SELECT count(*) FROM changes`)
	if left != before-st.ChangesPruned {
		t.Errorf("%d rows left of %d, Maintain says %d pruned", left, before, st.ChangesPruned)
	}
	if n := qaCount(t, s, `SELECT count(*) FROM changes c, feed_horizon h WHERE c.xid < h.oldest`); n != 0 {
		t.Errorf("%d rows older than the horizon left", n)
	}
	if rowsXid < h && st.ChangesPruned != 25000 {
		t.Errorf("rows of xid %d, horizon %d: %d pruned, want 25000", rowsXid, h, st.ChangesPruned)
	}
	t.Logf("rows xid %d, horizon %d, %d pruned in %s", rowsXid, h, st.ChangesPruned, took)
}

// TestTwoServersPruneTogether: two head-office processes on one database
// run maintenance at the same moment over 50,000 rows (two transactions')
// past the retention, six times. Neither fails (no deadlock between their chunked deletes),
// the horizon never moves back, and after they are done no row older than
// the horizon is left.
func TestTwoServersPruneTogether(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	dsn := pgtest.DSN(t)
	a := openRetention(t, dsn, clock, 48*time.Hour)
	b := openRetention(t, dsn, clock, 48*time.Hour)
	var last uint64
	for round := 0; round < 6; round++ {
		for i := 0; i < 2; i++ { // two transactions' rows
			if _, err := a.db.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', 'qa-' || g FROM generate_series(1, 25000) g`); err != nil {
				t.Fatal(err)
			}
		}
		// The mark, at a moment of its own (not the last prune's).
		clock.add(time.Minute)
		if _, err := b.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		clock.add(49 * time.Hour)
		before := qaCount(t, a, `SELECT count(*) FROM changes`)
		var wg sync.WaitGroup
		var pruned [2]int64
		var errs [2]error
		for i, s := range []*Server{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := s.Maintain(ctx)
				pruned[i], errs[i] = st.ChangesPruned, err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: server %d: %v", round, i, err)
			}
		}
		h := qaHorizon(t, a)
		if h < last {
			t.Errorf("round %d: horizon went back from %d to %d", round, last, h)
		}
		last = h
		left := qaCount(t, a, `SELECT count(*) FROM changes`)
		if left != before-pruned[0]-pruned[1] {
			t.Errorf("round %d: %d rows left of %d, the servers say %d + %d pruned", round, left, before, pruned[0], pruned[1])
		}
		if n := qaCount(t, a, `SELECT count(*) FROM changes c, feed_horizon h WHERE c.xid < h.oldest`); n != 0 {
			t.Errorf("round %d: %d rows older than the horizon left after both servers pruned (%d + %d pruned)", round, n, pruned[0], pruned[1])
		}
		t.Logf("round %d: horizon %d, pruned %d + %d", round, h, pruned[0], pruned[1])
	}
}

// TestHorizonNeverMovesBackwards: two servers with different retentions
// (24 h and 72 h) maintain in turn while changes are written; the horizon
// only ever grows, and every run leaves no row older than it.
func TestHorizonNeverMovesBackwards(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	dsn := pgtest.DSN(t)
	short := openRetention(t, dsn, clock, 24*time.Hour)
	long := openRetention(t, dsn, clock, 72*time.Hour)
	var last uint64
	for i := 0; i < 12; i++ {
		if _, err := short.db.Exec(ctx, `INSERT INTO changes (section, key) VALUES ('cards', $1)`, fmt.Sprint("qa-", i)); err != nil {
			t.Fatal(err)
		}
		s := short
		if i%3 == 2 {
			s = long
		}
		if _, err := s.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		h := qaHorizon(t, s)
		if h < last {
			t.Errorf("run %d: horizon went back from %d to %d", i, last, h)
		}
		last = h
		if n := qaCount(t, s, `SELECT count(*) FROM changes c, feed_horizon h WHERE c.xid < h.oldest`); n != 0 {
			t.Errorf("run %d: %d rows older than the horizon left", i, n)
		}
		clock.add(13 * time.Hour)
	}
	if last == 0 {
		t.Error("no horizon after 12 runs 13 h apart")
	}
}

// qaCorrectCards corrects n demo cards and returns their codes.
func qaCorrectCards(t *testing.T, s *Server, tag string) []string {
	t.Helper()
	codes := []string{"2900000000018", "2900000000025", "2900000000032", "2900000000049", "2900000000056"}
	for _, c := range codes {
		if _, err := s.Correct(context.Background(), Correction{ID: tag + "-" + c, Card: c, Points: dec("3"), Reason: "qa"}); err != nil {
			t.Fatal(err)
		}
	}
	return codes
}

// TestPagedDeltaAcrossPrune: a delta in pages of 2 whose first page is
// read before a prune and the next pages after it. With the cursor older
// than the new horizon the next page answers reset; otherwise the pages go
// on and together carry every card corrected since the cursor. The
// "held" run keeps a transaction open from before the cursor to after the
// prune, so that the mark's xmin cannot pass the cursor.
func TestPagedDeltaAcrossPrune(t *testing.T) {
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			ctx := context.Background()
			clock := newRetentionClock()
			s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
			if _, err := s.Import(ctx, demoReplica(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
				t.Fatal(err)
			}
			if held {
				tx, err := s.db.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := s.Snapshot(ctx, "S001-T01", "", 100)
			if err != nil {
				t.Fatal(err)
			}
			codes := qaCorrectCards(t, s, "paged")
			if _, err := s.Maintain(ctx); err != nil { // the mark
				t.Fatal(err)
			}
			p1, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: snap.Cursor, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if p1.Reset || !p1.More {
				t.Fatalf("first page: reset %v more %v; want a page with more", p1.Reset, p1.More)
			}
			got := map[string]bool{}
			for _, c := range p1.Replica.Cards {
				got[c.Code] = true
			}
			clock.add(49 * time.Hour)
			st, err := s.Maintain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := qaHorizon(t, s)
			behind := qaCursorXid(t, snap.Cursor) < h
			after, reset := p1.Next, false
			// Another test's transaction may hold the cursor back before
			// the demo import: then the delta holds every import row too.
			for page := 2; page < 1000 && after != ""; page++ {
				f, err := s.FeedPage(ctx, "S001-T01", FeedRequest{Cursor: snap.Cursor, After: after, Limit: 2})
				if err != nil {
					t.Fatal(err)
				}
				if f.Reset {
					reset = true
					break
				}
				for _, c := range f.Replica.Cards {
					got[c.Code] = true
				}
				after = f.Next
			}
			if reset != behind {
				t.Errorf("cursor %s, horizon %d (%d pruned): reset %v, want %v", snap.Cursor, h, st.ChangesPruned, reset, behind)
			}
			if !reset {
				for _, c := range codes {
					if !got[c] {
						t.Errorf("card %s corrected after the cursor: in no page of the delta", c)
					}
				}
			}
			t.Logf("cursor %s, horizon %d, %d pruned, reset %v", snap.Cursor, h, st.ChangesPruned, reset)
		})
	}
}

// TestLongTransactionAcrossMarkAndPrune: a transaction writes card 13's
// lot and its change row, then stays open over a mark, a prune 49 h later,
// and a second prune 49 h after that; it commits in between. Its change row
// is never deleted (its xid is at or past every horizon), and a delta from
// a cursor taken while it ran carries card 13 with the new lot — or, if
// that cursor is behind the horizon, answers reset.
func TestLongTransactionAcrossMarkAndPrune(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	const card = "2900000000018"
	var remaining string
	if err := s.db.QueryRow(ctx, `SELECT remaining::text FROM lots WHERE card = $1 AND lot_id = 'L-13-1'`, card).Scan(&remaining); err != nil {
		t.Fatal(err)
	}
	long, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	var longXid uint64
	if err := long.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&longXid); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE lots SET remaining = remaining - 7 WHERE card = $1 AND lot_id = 'L-13-1'`,
		`INSERT INTO changes (section, key) VALUES ('cards', $1)`} {
		if _, err := long.Exec(ctx, q, card); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Snapshot(ctx, "S001-T01", "", 100) // a cursor while it runs
	if err != nil {
		t.Fatal(err)
	}
	if x := qaCursorXid(t, snap.Cursor); x > longXid {
		t.Fatalf("cursor %s past the open transaction's xid %d", snap.Cursor, longXid)
	}
	qaCorrectCards(t, s, "long") // other traffic to prune
	if _, err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	clock.add(49 * time.Hour)
	if _, err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	h1 := qaHorizon(t, s)
	if h1 > longXid {
		t.Fatalf("horizon %d past the transaction still open (xid %d)", h1, longXid)
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	clock.add(49 * time.Hour)
	if _, err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := qaHorizon(t, s)
	if n := qaCount(t, s, `SELECT count(*) FROM changes WHERE xid = $1::text::xid8`, strconv.FormatUint(longXid, 10)); n != 1 {
		t.Errorf("the long transaction's change row: %d left (horizons %d, %d; its xid %d), want 1", n, h1, h2, longXid)
	}
	f, err := s.Feed(ctx, "S001-T01", snap.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	behind := qaCursorXid(t, snap.Cursor) < h2
	if f.Reset != behind {
		t.Fatalf("cursor %s, horizon %d: reset %v", snap.Cursor, h2, f.Reset)
	}
	t.Logf("long xid %d, cursor %s, horizons %d then %d, reset %v", longXid, snap.Cursor, h1, h2, f.Reset)
	if f.Reset {
		return
	}
	want := dec(remaining).Sub(dec("7"))
	for _, c := range f.Replica.Cards {
		if c.Code != card {
			continue
		}
		for _, l := range f.Replica.Lots {
			if l.Card == card && l.ID == "L-13-1" {
				if l.Remaining == nil || !l.Remaining.Decimal().Equal(want) {
					t.Errorf("lot L-13-1 in the delta: remaining %v, want %s", l.Remaining, want)
				}
				return
			}
		}
	}
	t.Errorf("delta from %s after the long transaction committed: card %s not carried (%d cards)", snap.Cursor, card, len(f.Replica.Cards))
}

// TestMaintainOverHTTPSaysWhatItPruned: POST /v1/erp/maintain answers
// {"expired_lots", "settled_cards"} and, when it deleted rows,
// "changes_pruned" with the rows deleted.
func TestMaintainOverHTTPSaysWhatItPruned(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	call := erpHTTP(t, s)
	if _, err := s.db.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', 'qa-' || g FROM generate_series(1, 30) g`); err != nil {
		t.Fatal(err)
	}
	code, body := call("POST", "/v1/erp/maintain", "")
	var first map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &first) != nil {
		t.Fatalf("first maintain: %d %s", code, body)
	}
	if _, ok := first["changes_pruned"]; ok {
		t.Errorf("first maintain (a mark, nothing pruned): %s", body)
	}
	if _, ok := first["expired_lots"]; !ok {
		t.Errorf("first maintain: no expired_lots in %s", body)
	}
	before := qaCount(t, s, `SELECT count(*) FROM changes`)
	clock.add(49 * time.Hour)
	code, body = call("POST", "/v1/erp/maintain", "")
	var second struct {
		Pruned *int64 `json:"changes_pruned"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &second) != nil {
		t.Fatalf("second maintain: %d %s", code, body)
	}
	gone := before - qaCount(t, s, `SELECT count(*) FROM changes`)
	switch {
	case gone == 0 && second.Pruned != nil:
		t.Errorf("nothing deleted, answer %s", body)
	case gone > 0 && (second.Pruned == nil || *second.Pruned != gone):
		t.Errorf("%d rows deleted, answer %s", gone, body)
	}
	t.Logf("%d rows deleted; answer %s", gone, body)
	if code, body := call("POST", "/v1/erp/maintain?x=1", ""); code != 200 {
		t.Errorf("third maintain: %d %s", code, body)
	}
}

// TestExportUnaffectedByPrune: ERP's journal export from the start and
// from a cursor taken before the prune delivers every correction's entry
// once, as without a retention.
func TestExportUnaffectedByPrune(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	qaCorrectCards(t, s, "ex1")
	// The export shows a transaction's entries once no older one runs in
	// the cluster: wait for the five.
	var mid *Export
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if mid, err = s.ExportJournal(ctx, "", 1000); err != nil {
			t.Fatal(err)
		}
		if len(mid.Entries) == 5 || time.Now().After(deadline) {
			break
		}
	}
	if len(mid.Entries) != 5 {
		t.Fatalf("export before: %d entries, want 5", len(mid.Entries))
	}
	if _, err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	qaCorrectCards(t, s, "ex2")
	clock.add(49 * time.Hour)
	if _, err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	all := exportAll(t, s, "", 10)
	if len(all) != 10 {
		t.Errorf("export from the start after the prune: %d entries, want 10", len(all))
	}
	for id, n := range all {
		if n != 1 {
			t.Errorf("entry %s exported %d times", id, n)
		}
	}
	rest := exportAll(t, s, mid.Cursor, 5)
	if len(rest) != 5 {
		t.Errorf("export from the cursor before the prune: %d entries, want the 5 after it", len(rest))
	}
}

// exportAll reads the export from cursor until want entries came (or
// 10 s passed: another test's transaction may hold the export back).
func exportAll(t *testing.T, s *Server, cursor string, want int) map[string]int {
	t.Helper()
	out := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for page := 0; page < 1000; page++ {
		ex, err := s.ExportJournal(context.Background(), cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ex.Entries {
			var v struct{ ID string }
			if err := json.Unmarshal(e.Entry, &v); err != nil {
				t.Fatal(err)
			}
			out[v.ID]++
		}
		cursor = ex.Cursor
		if !ex.More {
			if len(out) >= want || time.Now().After(deadline) {
				return out
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// TestPruneLockIsPerSchema: a head office pruning in another schema of the
// same database (advisory locks are per database) does not make this one
// skip its prune, while one in the same schema does.
func TestPruneLockIsPerSchema(t *testing.T) {
	ctx := context.Background()
	clock := newRetentionClock()
	s := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	other := openRetention(t, pgtest.DSN(t), clock, 48*time.Hour)
	hold := func(srv *Server) func() {
		c, err := srv.db.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, pruneLock); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		release := func() {
			once.Do(func() {
				c.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, pruneLock)
				c.Release()
			})
		}
		t.Cleanup(release) // before the servers close: a pool waits for its connections
		return release
	}
	if _, err := s.Maintain(ctx); err != nil { // the mark
		t.Fatal(err)
	}
	clock.add(49 * time.Hour)
	release := hold(s)
	if _, err := s.Maintain(ctx); err != nil || qaHorizon(t, s) != 0 {
		t.Fatalf("prune with its own schema's lock taken: %v, horizon %d, want it skipped", err, qaHorizon(t, s))
	}
	release()
	defer hold(other)()
	if _, err := s.Maintain(ctx); err != nil || qaHorizon(t, s) == 0 {
		t.Fatalf("prune while another schema's head office prunes: %v, horizon %d, want one set", err, qaHorizon(t, s))
	}
}
