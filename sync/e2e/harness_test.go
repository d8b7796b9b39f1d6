package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
	"tillagent/sync/pgtest"
)

var demoNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))

const erpToken = "erp-test-token"

// importDemo loads the demo replica into head office, as an ERP job would.
func importDemo(t testing.TB, h *ho) {
	t.Helper()
	demo, err := store.ParseReplicaFile(demoPath(), mustRead(t, demoPath()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Import(context.Background(), demo); err != nil {
		t.Fatal(err)
	}
}

func demoPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "demo", "replica.yaml")
}

// testClock is a clock a test can move (head office's, a till's).
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).In(demoNow.Location()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// ho is head office on a loopback listener; restart keeps the database.
type ho struct {
	t       testing.TB
	dsn     string
	offline store.OfflineLimits
	// enrolKey signs till secrets (headoffice.Options.EnrolKey).
	enrolKey []byte
	// retention is headoffice.Options.ChangeRetention.
	retention time.Duration
	// hold is headoffice.Options.JournalHold.
	hold time.Duration
	// noFetch is headoffice.Options.NoCardFetches.
	noFetch bool
	// admit is headoffice.Options' MaxTillRequests, TillQueueWait and
	// BusyRetryAfter (zero: the defaults).
	admit struct {
		max             int
		wait, retryWait time.Duration
	}
	srv *headoffice.Server
	hs  *httptest.Server
	// clock is head office's (demoNow unless a test moves it); restart
	// keeps it.
	clock *testClock
	// app is the application_name of head office's connections, for
	// cutDB to find them.
	app string
}

func startHO(t testing.TB, dsn string) *ho { return startHOWith(t, dsn, store.OfflineLimits{}) }

func startHOWith(t testing.TB, dsn string, off store.OfflineLimits) *ho {
	h := &ho{t: t, dsn: dsn, offline: off, clock: newTestClock(demoNow)}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *ho) start() {
	if h.clock == nil {
		h.clock = newTestClock(demoNow)
	}
	if h.app == "" {
		b := make([]byte, 6)
		rand.Read(b)
		h.app = "ho-" + hex.EncodeToString(b)
	}
	dsn := h.dsn
	if u, err := url.Parse(dsn); err == nil {
		q := u.Query()
		q.Set("application_name", h.app)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	srv, err := headoffice.Open(context.Background(), headoffice.Options{DSN: dsn, ERPToken: erpToken, Offline: h.offline, EnrolKey: h.enrolKey,
		Clock: h.clock.Now, ChangeRetention: h.retention, JournalHold: h.hold, NoCardFetches: h.noFetch,
		MaxTillRequests: h.admit.max, TillQueueWait: h.admit.wait, BusyRetryAfter: h.admit.retryWait})
	if err != nil {
		h.t.Fatal(err)
	}
	h.srv, h.hs = srv, httptest.NewServer(srv.Handler())
}

func (h *ho) stop() {
	if h.hs != nil {
		h.hs.CloseClientConnections()
		h.hs.Close()
		h.srv.Close()
		h.hs = nil
	}
}

// cutDB has PostgreSQL drop every connection of head office's pool, in a
// transaction or idle (a failover, an administrator, a proxy restarting),
// and returns how many it dropped.
func (h *ho) cutDB() int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, h.app).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *ho) restart(p *proxy) {
	h.stop()
	h.start()
	p.target.Store(h.hs.URL)
}

// proxy sits between tills and head office and injects faults.
type proxy struct {
	target atomic.Value // string URL
	down   atomic.Bool  // close every connection without an answer
	// dropJournal: this many journal pushes are forwarded, committed, and
	// their answer lost (the connection is closed instead).
	dropJournal atomic.Int32
	// dupJournal: forward every journal push twice (a duplicated batch).
	dupJournal atomic.Bool
	latency    atomic.Int64 // ns added before forwarding
	// onFeed, if set, runs before each feed request is forwarded.
	onFeed func(r *http.Request)
	// onJournal, if set, runs before each journal push is forwarded.
	onJournal func(r *http.Request)
	// slowBody, if set, is how long the answer to r takes after its
	// headers and first byte (a slow link: the answer starts, the rest
	// trickles in); 0 sends it at once.
	slowBody func(r *http.Request) time.Duration
	// hang: take the request and answer nothing, not even headers (a head
	// office that accepts the connection and is stuck).
	hang atomic.Bool
	// resets: two requests of three are cut (Go's transport sends a GET
	// cut on a reused connection once more by itself), in turn: before it
	// reaches head office, 0–3 ms after it left for head office (on its
	// way, or while head office works on it), and after head office
	// answered (the answer lost).
	resets atomic.Bool
	resetN atomic.Int64
	hs     *httptest.Server
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{}
	p.target.Store(target)
	p.hs = httptest.NewServer(p)
	t.Cleanup(func() { p.hs.CloseClientConnections(); p.hs.Close() })
	return p
}

func (p *proxy) URL() string { return p.hs.URL }

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		hangUp(w)
		return
	}
	if d := p.latency.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	body, _ := io.ReadAll(r.Body)
	journal := r.URL.Path == "/v1/till/journal"
	if r.URL.Path == "/v1/till/feed" && p.onFeed != nil {
		p.onFeed(r)
	}
	if journal && p.onJournal != nil {
		p.onJournal(r)
	}
	if p.hang.Load() {
		<-r.Context().Done()
		return
	}
	forwardCtx := func(ctx context.Context) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, r.Method, p.target.Load().(string)+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return resp, data, err
	}
	forward := func() (*http.Response, []byte, error) { return forwardCtx(r.Context()) }
	if !p.resets.Load() {
		// counted only while cutting: the first request after is cut
	} else if n := p.resetN.Add(1); n%3 != 0 {
		switch n / 3 % 3 { // in pairs: a GET and the transport's retry of it
		case 1:
			ctx, cancel := context.WithTimeout(r.Context(), time.Duration(n%4)*time.Millisecond)
			forwardCtx(ctx)
			cancel()
		case 2:
			forward()
		}
		hangUp(w)
		return
	}
	resp, data, err := forward()
	if err == nil && journal && p.dupJournal.Load() {
		resp, data, err = forward()
	}
	if err != nil {
		hangUp(w)
		return
	}
	if journal && p.dropJournal.Load() > 0 {
		p.dropJournal.Add(-1)
		hangUp(w) // committed at head office, answer lost
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if p.slowBody != nil && len(data) > 1 {
		if d := p.slowBody(r); d > 0 {
			w.Write(data[:1])
			http.NewResponseController(w).Flush()
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
			data = data[1:]
		}
	}
	w.Write(data)
}

// till is one till: its store and its sync client.
type till struct {
	id, storeID string
	st          *store.Store
	c           *client.Client
	now         time.Time
	secret      string
	checks      int
	// clock is the till's (its store's and client's): demoNow + the skew
	// unless a test moves it; now is what it showed at the start.
	clock *testClock
	// dropped are the entries prune let go, as they were: journal
	// includes them, so the tests' models see every entry the till made.
	dropped []store.Entry
}

func newTill(t testing.TB, h *ho, p *proxy, id, storeID string, clockSkew time.Duration) *till {
	t.Helper()
	return newTillWith(t, h, p, id, storeID, clockSkew, nil)
}

// newTillWith is newTill with the client's options adjusted by opt.
func newTillWith(t testing.TB, h *ho, p *proxy, id, storeID string, clockSkew time.Duration, opt func(*client.Options)) *till {
	t.Helper()
	ctx := context.Background()
	secret, err := h.srv.Enrol(ctx, id, storeID)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock(demoNow.Add(clockSkew))
	now := clock.Now()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: id,
		Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := client.Options{URL: p.URL(), TillID: id, StoreID: storeID, Secret: secret, Store: st,
		BatchSize: 3, SnapshotPage: 3, Interval: 50 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond,
		RequestTimeout: 5 * time.Second, Clock: clock.Now}
	if opt != nil {
		opt(&o)
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &till{id: id, storeID: storeID, st: st, c: c, now: now, secret: secret, clock: clock}
}

// demoTills is head office with the demo imported and tills ids of store
// S001 behind one proxy, each synced once.
func demoTills(t *testing.T, ids ...string) (*ho, []*till) {
	t.Helper()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	var tills []*till
	for _, id := range ids {
		tills = append(tills, newTill(t, h, p, id, "S001", 0))
	}
	syncEach(t, tills...)
	return h, tills
}

// syncEach runs one sync cycle on each till, failing the test on an error.
func syncEach(t *testing.T, tills ...*till) {
	t.Helper()
	for _, tl := range tills {
		if err := tl.c.SyncNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// sell prices a check on the till (QuoteInput + checkout.Quote, as the
// agent does) and records it; redeem "" spends nothing.
func (tl *till) sell(t *testing.T, card string, lines []checkout.Line, redeem string) checkout.Result {
	t.Helper()
	ctx := context.Background()
	tl.checks++
	check := checkout.Check{ID: tl.id + "-" + string(rune('A'+tl.checks)), StoreID: tl.storeID, Lines: lines}
	in, err := tl.st.QuoteInput(ctx, check, []string{card}, tl.now)
	if err != nil {
		t.Fatal(err)
	}
	if redeem != "" {
		p := checkout.MustPoints(redeem)
		in.Redeem = &p
	}
	res, err := checkout.Quote(in)
	if err != nil {
		t.Fatalf("till %s: quote: %v", tl.id, err)
	}
	if _, err := tl.st.RecordSale(ctx, res); err != nil {
		t.Fatal(err)
	}
	return res
}

func (tl *till) returnAll(t *testing.T, id string, sale checkout.Result) {
	t.Helper()
	ctx := context.Background()
	rin, err := tl.st.ReturnInput(ctx, sale, tl.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range sale.Lines {
		rin.Lines = append(rin.Lines, checkout.ReturnLine{No: l.No, Qty: l.Qty})
	}
	rr, err := checkout.Return(rin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.st.RecordReturn(ctx, id, sale, rr); err != nil {
		t.Fatal(err)
	}
}

// journal is every entry the till made, in order: those it holds and
// those it dropped (prune).
func (tl *till) journal(t *testing.T) []store.Entry {
	t.Helper()
	es := tl.kept(t)
	if len(tl.dropped) == 0 {
		return es
	}
	all := append(slices.Clone(tl.dropped), es...)
	slices.SortFunc(all, func(a, b store.Entry) int { return strings.Compare(a.ID, b.ID) }) // a till's ids are in append order
	return all
}

// kept is the journal the till's store holds.
func (tl *till) kept(t *testing.T) []store.Entry {
	t.Helper()
	es, err := tl.st.JournalAfter(context.Background(), "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// prune drops the entries head office lets the till drop of those made
// before before (store.PruneJournal, in the agent's runs), keeping a copy
// in dropped, and returns how many went.
func (tl *till) prune(t *testing.T, before time.Time) int {
	t.Helper()
	was := tl.kept(t)
	total := 0
	for {
		n, err := tl.st.PruneJournal(context.Background(), before, 500)
		if err != nil {
			t.Fatalf("till %s: prune the journal: %v", tl.id, err)
		}
		if total += n; n == 0 {
			break
		}
	}
	left := map[string]bool{}
	for _, e := range tl.kept(t) {
		left[e.ID] = true
	}
	for _, e := range was {
		if !left[e.ID] {
			tl.dropped = append(tl.dropped, e)
		}
	}
	if len(was)-len(left) != total {
		t.Fatalf("till %s: pruned %d entries, the journal lost %d", tl.id, total, len(was)-len(left))
	}
	return total
}

// powder is washing powder (cost 410.00) at 900.00: up to 449 points a pack.
func powder(qty string) []checkout.Line {
	return []checkout.Line{{No: 1, ProductID: "4002", Qty: checkout.MustQty(qty), Price: checkout.MustMoney("900.00")}}
}

func basket() []checkout.Line {
	return []checkout.Line{
		{No: 1, ProductID: "1001", Qty: checkout.MustQty("2"), Price: checkout.MustMoney("89.90")},
		{No: 2, ProductID: "1101", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("65.00")},
		{No: 3, ProductID: "1303", Qty: checkout.MustQty("3"), Price: checkout.MustMoney("140.00")},
	}
}

func pgDSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(pgtest.EnvDSN) == "" && testing.Short() {
		t.Skip("-short and no PostgreSQL")
	}
	return pgtest.DSN(t)
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// loadedTill is head office with the demo, a proxy before it, and a till
// of store S001 (opt adjusts its client's options) that has loaded its
// replica.
func loadedTill(t *testing.T, id string, opt func(*client.Options)) (*ho, *proxy, *till) {
	t.Helper()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	tl := newTillWith(t, h, p, id, "S001", 0, opt)
	if err := tl.c.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, p, tl
}
