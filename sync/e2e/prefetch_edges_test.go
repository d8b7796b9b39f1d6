package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/wire"
)

// inFlight counts the till's HTTP requests not yet done: started and
// neither failed nor read to the end of their body.
type inFlight struct {
	next http.RoundTripper
	n    atomic.Int64
	// panicOn, if set, panics the request it returns true for, as a bug
	// deep in a cycle would.
	panicOn func(r *http.Request) bool
}

func (t *inFlight) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.panicOn != nil && t.panicOn(r) {
		panic("qa: boom in a feed request")
	}
	t.n.Add(1)
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.n.Add(-1)
		return nil, err
	}
	resp.Body = &edgeBody{ReadCloser: resp.Body, done: func() { t.n.Add(-1) }}
	return resp, nil
}

type edgeBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *edgeBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// edgeTill is newTillWith with the store's busy timeout short (a locked
// database fails an import at once) and the client's requests counted.
func edgeTill(t *testing.T, h *ho, p *proxy, id string, busy time.Duration, opt func(*client.Options)) (*till, *inFlight) {
	t.Helper()
	ctx := context.Background()
	secret, err := h.srv.Enrol(ctx, id, "S001")
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock(demoNow)
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: id, Clock: clock.Now, BusyTimeout: busy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rt := &inFlight{next: http.DefaultTransport.(*http.Transport).Clone()}
	o := client.Options{URL: p.URL(), TillID: id, StoreID: "S001", Secret: secret, Store: st,
		BatchSize: 3, SnapshotPage: 3, Interval: 50 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond,
		RequestTimeout: 5 * time.Second, Clock: clock.Now, HTTPClient: &http.Client{Transport: rt}}
	if opt != nil {
		opt(&o)
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &till{id: id, storeID: "S001", st: st, c: c, now: clock.Now(), secret: secret, clock: clock}, rt
}

// massCards imports n cards with two lots each at head office: a delta of n
// change records.
func massCards(t *testing.T, h *ho, prefix string, n int) []string {
	t.Helper()
	mass := &store.Replica{Version: 1}
	var codes []string
	for i := 0; i < n; i++ {
		code := fmt.Sprintf("%s%05d", prefix, i)
		codes = append(codes, code)
		mass.Cards = append(mass.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for j := 1; j <= 2; j++ {
			mass.Lots = append(mass.Lots, store.ReplicaLot{ID: fmt.Sprintf("M%d", j), Card: code,
				Points: checkout.MustPoints(fmt.Sprint(10 * j)), AccruedAt: demoNow.Add(-time.Hour)})
		}
	}
	if _, err := h.srv.Import(context.Background(), mass); err != nil {
		t.Fatal(err)
	}
	return codes
}

// deltaReq tells a paged delta's request from a first load's.
func deltaReq(r *http.Request) bool {
	q := r.URL.Query()
	return r.URL.Path == "/v1/till/feed" && q.Get("snapshot") != "1" && q.Get("cursor") != ""
}

// TestDeltaErrorWaitsForThePrefetch: page 1's import fails (the till's
// database is locked by another writer) while page 2, asked for during it,
// is slow to come. The cycle returns only once that request is done (no
// request of the till outlives its cycle), says which page failed, and the
// next cycle imports the whole delta from page 1 with exact balances.
func TestDeltaErrorWaitsForThePrefetch(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	tl, rt := edgeTill(t, h, p, "S001-T91", 150*time.Millisecond, func(o *client.Options) { o.DeltaPage = 7 })
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	codes := massCards(t, h, "29300000", 40)
	lock, err := sql.Open("sqlite", "file:"+tl.st.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	conn, err := lock.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var reqs []string
	var prefetchDone atomic.Int64 // when page 2's request was answered (ns)
	locked := false
	p.onFeed = func(r *http.Request) {
		if !deltaReq(r) {
			return
		}
		mu.Lock()
		reqs = append(reqs, r.URL.Query().Get("after"))
		n := len(reqs)
		mu.Unlock()
		switch n {
		case 1:
			if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			locked = true
			mu.Unlock()
		case 2:
			time.Sleep(700 * time.Millisecond)
			prefetchDone.Store(time.Now().UnixNano())
		}
	}
	err = tl.c.SyncNow(ctx)
	returned := time.Now().UnixNano()
	if err == nil || !strings.Contains(err.Error(), "page 1") {
		t.Fatalf("delta with page 1's import failing: %v", err)
	}
	if n := rt.n.Load(); n != 0 {
		t.Errorf("%d requests still in flight after the cycle returned", n)
	}
	if d := prefetchDone.Load(); d == 0 || returned < d {
		t.Errorf("the cycle returned before page 2's request was done (returned %d, answered %d)", returned, d)
	}
	mu.Lock()
	wasLocked := locked
	mu.Unlock()
	if !wasLocked {
		t.Fatal("test setup: the till's database was not locked")
	}
	{
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
	p.onFeed = nil
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, tl, append(codes, card13))
}

// TestDeltaCancelledMidImportResumes: the cycle's ctx is cancelled as
// page 3 is asked for (while page 2 is imported), then head office is
// unreachable for the page after that in a second cycle. Every cycle
// leaves no request behind; a later one goes on from the last page
// imported, not from the start, and ends with every card at head office's
// balance.
func TestDeltaCancelledMidImportResumes(t *testing.T) {
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	tl, rt := edgeTill(t, h, p, "S001-T92", 0, func(o *client.Options) { o.DeltaPage = 7 })
	if err := tl.c.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	codes := massCards(t, h, "29400000", 60)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var reqs []string
	p.onFeed = func(r *http.Request) {
		if !deltaReq(r) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, r.URL.Query().Get("after"))
		switch len(reqs) {
		case 3:
			cancel()
		case 6:
			p.down.Store(true) // the next request gets no answer
		}
	}
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("a cancelled delta went through")
	}
	if n := rt.n.Load(); n != 0 {
		t.Errorf("%d requests in flight after the cancelled cycle", n)
	}
	st := tl.c.Status()
	mu.Lock()
	firstCut := len(reqs)
	mu.Unlock()
	if st.DeltaPages > 2 {
		t.Errorf("%d pages counted after a cut during page 2", st.DeltaPages)
	}
	if err := tl.c.SyncNow(context.Background()); err == nil {
		t.Fatal("the delta went through although head office became unreachable")
	}
	if n := rt.n.Load(); n != 0 {
		t.Errorf("%d requests in flight after the failed cycle", n)
	}
	mu.Lock()
	resumed := reqs[firstCut]
	secondCut := len(reqs)
	mu.Unlock()
	if st.DeltaPages > 0 && resumed == "" {
		t.Errorf("after %d pages imported the delta started again from the beginning", st.DeltaPages)
	}
	p.down.Store(false)
	if err := tl.c.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if reqs[secondCut] == "" {
		t.Errorf("after the second cut the delta started again from the beginning")
	}
	mu.Unlock()
	if err := tl.c.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, tl, append(codes, card13))
	if st := tl.c.Status(); st.DeltaLoading || st.State != "ok" {
		t.Errorf("status after the delta: %+v", st)
	}
}

// TestPagedDeltaExactAtEveryCommit: card 13 shows exactly what it holds
// at every moment of a paged delta, read by another goroutine all along
// (not only before each request, which now runs beside the import): 300 −
// 100 redeemed (pushed by this cycle, folded, the delta's first page
// carrying the new watermark), then − 50 redeemed by a sale during the
// delta, which head office then folds mid-delta (a push it commits late:
// its watermark for the till moves between pages, the entry still pending
// here).
func TestPagedDeltaExactAtEveryCommit(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T93", func(o *client.Options) { o.DeltaPage = 7 })
	codes := massCards(t, h, "29500000", 90)
	tl.sell(t, card13, powder("1"), "100")
	var mu sync.Mutex
	n := 0
	sold, ingested := false, false
	var bad []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen150 := false
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			after := sold
			mu.Unlock()
			b, err := tl.st.Spendable(ctx, card13, tl.now)
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			}
			s := b.Spendable.String()
			mu.Lock()
			switch {
			case s == "150":
				seen150 = true
			case s == "200" && !seen150:
			default:
				if len(bad) < 10 {
					bad = append(bad, fmt.Sprintf("%s (second sale recorded %v)", s, after))
				}
			}
			mu.Unlock()
		}
	}()
	p.onFeed = func(r *http.Request) {
		if !deltaReq(r) {
			return
		}
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		switch k {
		case 3:
			// A sale during the delta, as checkout goes on.
			tl.sell(t, card13, powder("1"), "50")
			mu.Lock()
			sold = true
			mu.Unlock()
		case 6:
			// Head office commits its push now (the sale's redemption
			// and accrual).
			pend, err := tl.st.PendingChain(ctx, 10)
			if err != nil || len(pend) != 2 {
				t.Errorf("pending: %v, %v", pend, err)
				return
			}
			b := &wire.Batch{TillID: tl.id}
			for _, e := range pend {
				b.Entries = append(b.Entries, wire.Entry{Entry: e.Entry, Prev: e.Prev})
			}
			if res, err := h.srv.Ingest(ctx, b); err != nil {
				t.Error(err)
			} else {
				for _, x := range res.Results {
					if x.Status != wire.Applied {
						t.Errorf("late push: %+v", x)
					}
				}
			}
			mu.Lock()
			ingested = true
			mu.Unlock()
		}
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	p.onFeed = nil
	mu.Lock()
	if !sold || !ingested {
		t.Errorf("test setup: second sale %v, its late push %v", sold, ingested)
	}
	if st := tl.c.Status(); st.Folded != "" && !strings.HasPrefix(st.Folded, tl.id) {
		t.Errorf("status folded %q", st.Folded)
	}
	if n < 10 {
		t.Errorf("%d delta pages, want the mass import paged", n)
	}
	if len(bad) > 0 {
		t.Errorf("card 13 showed, during the delta: %v; want 200, then 150 once the second sale is recorded", bad)
	}
	mu.Unlock()
	if b, _ := tl.st.Spendable(ctx, card13, tl.now); b.Spendable.String() != "150" {
		t.Errorf("card 13 after the delta: %s spendable, want 150", b.Spendable)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, tl, append(codes, card13))
}

// TestResetOnPrefetchedPage: ERP resets the till's feed while page 2 is
// imported; page 3, asked for then, says so. The till drops the delta,
// loads its replica afresh, and ends at head office's balances with one
// reset counted.
func TestResetOnPrefetchedPage(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T94", func(o *client.Options) { o.DeltaPage = 7 })
	codes := massCards(t, h, "29600000", 50)
	tl.sell(t, card13, powder("1"), "100")
	var mu sync.Mutex
	n := 0
	p.onFeed = func(r *http.Request) {
		if !deltaReq(r) {
			return
		}
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if k == 3 {
			if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
				t.Errorf("reset: %d %s", code, data)
			}
		}
	}
	for i := 0; i < 3; i++ {
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	if st := tl.c.Status(); st.Resets != 1 || st.State != "ok" || st.DeltaLoading {
		t.Errorf("status: resets %d, state %s, delta loading %v", st.Resets, st.State, st.DeltaLoading)
	}
	sameBalances(t, h, tl, append(codes, card13))
	if b, _ := tl.st.Spendable(ctx, card13, tl.now); b.Spendable.String() != "200" {
		t.Errorf("card 13: %s spendable, want 200", b.Spendable)
	}
}

// TestPrefetchPanicFailsTheCycle: a panic while a feed page is fetched
// fails the cycle with an error (client.TestCyclePanicIsAnError): it must
// not take the till's process, and its sales, down. A delta's first page
// is fetched on the cycle's goroutine, and its panic is recovered (the
// control); its second page and a first load's second page are fetched
// beside the import of the page before, in a goroutine of their own. Each
// runs in a child process, which an unrecovered panic kills.
func TestPrefetchPanicFailsTheCycle(t *testing.T) {
	if at := os.Getenv("TILLAGENT_PREFETCH_PANIC_CHILD"); at != "" {
		prefetchPanicChild(t, at)
		return
	}
	pgDSN(t) // skip as the others do without PostgreSQL
	for _, at := range []string{"delta-1", "delta-2", "load-2"} {
		t.Run(at, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPrefetchPanicFailsTheCycle$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "TILLAGENT_PREFETCH_PANIC_CHILD="+at)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "child: cycle failed with the panic as an error") {
				tail := string(out)
				if i := strings.Index(tail, "panic: "); i >= 0 {
					tail = tail[i:]
				}
				if len(tail) > 2500 {
					tail = tail[:2500]
				}
				t.Fatalf("the till's process died (%v) on a panic fetching %s:\n%s", err, at, tail)
			}
		})
	}
}

// prefetchPanicChild panics the request at ("delta-N": the delta's Nth;
// "load-N": the first load's Nth page).
func prefetchPanicChild(t *testing.T, at string) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	var n atomic.Int64
	var armed atomic.Bool
	kind, nth, _ := strings.Cut(at, "-")
	tl, rt := edgeTill(t, h, p, "S001-T95", 0, func(o *client.Options) { o.DeltaPage = 7 })
	rt.panicOn = func(r *http.Request) bool {
		if !armed.Load() || r.URL.Path != "/v1/till/feed" {
			return false
		}
		if kind == "delta" && !deltaReq(r) || kind == "load" && r.URL.Query().Get("snapshot") != "1" {
			return false
		}
		return fmt.Sprint(n.Add(1)) == nth
	}
	if kind == "delta" {
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		massCards(t, h, "29700000", 30)
	}
	armed.Store(true)
	err := tl.c.SyncNow(ctx)
	if err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("cycle with a panicking page request: %v", err)
	}
	fmt.Println("child: cycle failed with the panic as an error:", err)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("the cycle after: %v", err)
	}
}
