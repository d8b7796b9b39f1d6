package headoffice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// servedHO is head office on dsn with the demo and till S001-T01
// enrolled, served over loopback HTTP; it returns the till's secret.
func servedHO(t *testing.T, dsn string) (*Server, *httptest.Server, string) {
	t.Helper()
	return servedHOWith(t, Options{DSN: dsn})
}

// servedHOWith is servedHO with options o (its ERP token and clock set).
func servedHOWith(t *testing.T, o Options) (*Server, *httptest.Server, string) {
	t.Helper()
	o.ERPToken, o.Clock = "erp-secret", func() time.Time { return demoNow }
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(context.Background(), demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(context.Background(), "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs, secret
}

// namedHO is servedHO on a fresh test schema whose connections carry a
// name of their own (application_name app), to find them in
// pg_stat_activity; dsn is the schema's DSN without the name.
func namedHO(t *testing.T) (s *Server, hs *httptest.Server, secret, dsn, app string) {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	app = "ho-test-" + hex.EncodeToString(b)
	dsn = pgtest.DSN(t)
	s, hs, secret = servedHO(t, dsn+"&application_name="+app)
	return s, hs, secret, dsn, app
}

// pgConn is a connection of the test's own to dsn, closed when it ends.
func pgConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// holdTillRow locks till S001-T01's row on a connection of its own, until
// the returned transaction ends.
func holdTillRow(t *testing.T, dsn string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	hold, err := pgConn(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Rollback(context.Background()) })
	if _, err := hold.Exec(ctx, `SELECT 1 FROM tills WHERE till_id = 'S001-T01' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	return hold
}

// httpCall sends a request to hs as till S001-T01 with secret, or as ERP
// when secret is empty, and returns the status and the body.
func httpCall(t *testing.T, hs *httptest.Server, method, path string, body []byte, secret string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
	if secret != "" {
		req.SetBasicAuth("S001-T01", secret)
	} else {
		req.Header.Set("Authorization", "Bearer erp-secret")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// accrual7 is lt's next batch: 7 points accrued to card in a lot of their
// own, active now.
func accrual7(lt *lateTill, card string) *wire.Batch {
	return lt.batch(store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700, CreatedAt: demoNow,
		Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}})
}

// wantApplied: a push answered 200, every entry applied.
func wantApplied(t *testing.T, what string, code int, data []byte) {
	t.Helper()
	var res wire.BatchResult
	if code != 200 || json.Unmarshal(data, &res) != nil {
		t.Fatalf("%s: %d %s", what, code, data)
	}
	wantStatuses(t, what, &res, wire.Applied)
}

// TestDatabaseConnectionsCut: PostgreSQL drops every connection of head
// office's pool (a failover, an administrator, a proxy in between
// restarting) while they sit idle. A till's next push and feed work as if
// nothing happened, and the push counts once; an ERP report is answered
// 503 "retry" at most once, and the next one works; Ingest called in
// process reconnects too.
func TestDatabaseConnectionsCut(t *testing.T) {
	s, hs, secret, dsn, app := namedHO(t)
	ctx := context.Background()
	admin := pgConn(t, dsn)
	cut := func() {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no connection of head office's pool to cut")
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("head office's connections still there after pg_terminate_backend")
			}
		}
	}
	card := "2900000000018"
	balance := func() string {
		t.Helper()
		code, data := httpCall(t, hs, "GET", "/v1/erp/reports/balances?card="+card, nil, "")
		if code == http.StatusServiceUnavailable {
			code, data = httpCall(t, hs, "GET", "/v1/erp/reports/balances?card="+card, nil, "")
		}
		var cb CardBalance
		if code != 200 || json.Unmarshal(data, &cb) != nil {
			t.Fatalf("balance report: %d %s", code, data)
		}
		return cb.Balance.String()
	}
	before := balance()
	var lt lateTill
	for round := 1; round <= 3; round++ {
		cut()
		body, _ := json.Marshal(accrual7(&lt, card))
		code, data := httpCall(t, hs, "POST", "/v1/till/journal", body, secret)
		wantApplied(t, fmt.Sprintf("push %d after the connections were cut", round), code, data)
		cut()
		if code, data := httpCall(t, hs, "GET", "/v1/till/feed", nil, secret); code != 200 {
			t.Fatalf("feed %d after the connections were cut: %d %s", round, code, data)
		}
		cut()
		want := dec(before).Add(dec("7").Mul(dec(string(rune('0' + round))))).String()
		if got := balance(); got != want {
			t.Fatalf("balance after %d pushes: %s, want %s", round, got, want)
		}
	}
	if n := s.LostConnections(); n < 9 {
		t.Errorf("%d lost connections counted, want one for each of the 9 requests after a cut", n)
	}
	// Ingest itself reconnects too: a connection lost between the till's
	// authentication and its batch.
	cut()
	res, err := s.Ingest(ctx, accrual7(&lt, card))
	if err != nil {
		t.Fatalf("ingest after the connections were cut: %v", err)
	}
	wantStatuses(t, "ingest", res, wire.Applied)
	if got, want := balance(), dec(before).Add(dec("28")).String(); got != want {
		t.Fatalf("balance after 4 pushes: %s, want %s", got, want)
	}
}

// pgLink is a TCP proxy between head office and PostgreSQL that the test
// can cut (every connection reset, as a failed-over server's or a broken
// network's: no FATAL message first) and take down (connections refused).
type pgLink struct {
	mu    sync.Mutex
	conns map[net.Conn]bool
	down  bool
}

// pgProxy listens on loopback in front of PostgreSQL at dsn and hands
// each connection to accept (on a goroutine of its own) with the server's
// address; it returns dsn pointing at the proxy.
func pgProxy(t *testing.T, dsn string, accept func(c net.Conn, target string)) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	target := u.Host
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go accept(c, target)
		}
	}()
	u.Host = ln.Addr().String()
	return u.String()
}

// newPGLink puts a pgLink in front of PostgreSQL at dsn and returns the
// DSN through it.
func newPGLink(t *testing.T, dsn string) (*pgLink, string) {
	l := &pgLink{conns: map[net.Conn]bool{}}
	t.Cleanup(func() { l.cut() })
	return l, pgProxy(t, dsn, func(c net.Conn, target string) {
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			c.Close()
			return
		}
		l.serve(c, target)
	})
}

func (l *pgLink) serve(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	l.conns[c], l.conns[up] = true, true
	l.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// cut resets every connection through the link.
func (l *pgLink) cut() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, not an orderly close
		}
		c.Close()
		delete(l.conns, c)
		n++
	}
	return n
}

func (l *pgLink) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

// TestDatabaseLinkCut: the network between head office and PostgreSQL
// breaks: every connection reset with no word from the server, then for a
// while no connection at all, then back. A push while the link is cut
// goes through on a new connection; while it is down it is answered 503
// (the till tries again later); once back, the next push works, and every
// accepted push counts once.
func TestDatabaseLinkCut(t *testing.T) {
	link, dsn := newPGLink(t, pgtest.DSN(t))
	s, hs, secret := servedHO(t, dsn)
	ctx := context.Background()
	card := "2900000000018"
	before, err := s.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	next := func() []byte {
		body, _ := json.Marshal(accrual7(&lt, card))
		return body
	}
	push := func(body []byte) (int, []byte) { return httpCall(t, hs, "POST", "/v1/till/journal", body, secret) }
	applied := 0
	code, data := push(next())
	wantApplied(t, "push before the cut", code, data)
	applied++
	if n := link.cut(); n == 0 {
		t.Fatal("no connection through the link to cut")
	}
	code, data = push(next())
	wantApplied(t, "push after the link was cut", code, data)
	applied++

	link.setDown(true)
	link.cut()
	body := next()
	if code, data = push(body); code != http.StatusServiceUnavailable {
		t.Fatalf("push with PostgreSQL unreachable: %d %s, want 503", code, data)
	}
	link.setDown(false)
	code, data = push(body) // the till sends the same batch again
	wantApplied(t, "push once the link is back", code, data)
	applied++
	if s.LostConnections() == 0 {
		t.Error("no lost connection counted")
	}

	got, err := s.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if want := before.Balance.Decimal().Add(dec("7").Mul(decimal.NewFromInt(int64(applied)))); !got.Balance.Decimal().Equal(want) {
		t.Fatalf("balance after %d pushes: %s, want %s", applied, got.Balance, want)
	}
}

// TestOneTillOnTwoHeadOffices: behind a load balancer, a till's push that
// timed out is sent again and lands on the second head-office process
// while the first still works on it. Each of 20 batches goes to both at
// once: one answer says applied, the other duplicate (never an error,
// never both applied), and the card gains each batch's points once.
func TestOneTillOnTwoHeadOffices(t *testing.T) {
	now := demoNow
	a := lateFixture(t, &now)
	ctx := context.Background()
	b, err := Open(ctx, Options{DSN: a.db.Config().ConnString(), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	card := "2900000000018"
	before, err := a.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	for i := 0; i < 20; i++ {
		batch := lt.batch(
			store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("5"), PurchaseKop: 500, CreatedAt: demoNow,
				Lots: []store.LotChange{{Create: true, Delta: dec("5"), ActiveFrom: demoNow}}},
			store.Entry{CardCode: card, Kind: store.KindRedemption, Points: dec("-2"), AmountKop: 200, CreatedAt: demoNow,
				Lots: []store.LotChange{{LotID: "L-13-2", Delta: dec("-2")}}})
		got := make(chan string, 2)
		for _, s := range []*Server{a, b} {
			go func() {
				res, err := s.Ingest(ctx, batch)
				if err != nil {
					got <- err.Error()
					return
				}
				got <- statuses(res)
			}()
		}
		x, y := <-got, <-got
		if x > y {
			x, y = y, x
		}
		if x != "applied,applied" || y != "duplicate,duplicate" {
			t.Fatalf("batch %d on both: %q and %q, want one applied and one duplicate", i, x, y)
		}
	}
	after, err := a.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if want := before.Balance.Decimal().Add(dec("60")); !after.Balance.Decimal().Equal(want) {
		t.Fatalf("balance %s after 20 batches of +3, want %s", after.Balance, want)
	}
}

// TestDatabaseOutageLoggedOnce: while PostgreSQL cannot be reached every
// till's push is answered 503, and head office's log says so once, not
// once a push (a thousand tills retrying would bury the log); the first
// push that goes through once it is back logs that, with how long it was
// down, once.
func TestDatabaseOutageLoggedOnce(t *testing.T) {
	link, dsn := newPGLink(t, pgtest.DSN(t))
	var log syncBuffer
	_, hs, secret := servedHOWith(t, Options{DSN: dsn, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	var lt lateTill
	push := func(b *wire.Batch) (int, []byte) {
		body, _ := json.Marshal(b)
		return httpCall(t, hs, "POST", "/v1/till/journal", body, secret)
	}
	count := func(msg string) int { return strings.Count(log.String(), `msg="`+msg+`"`) }
	link.setDown(true)
	link.cut()
	b := accrual7(&lt, "2900000000018")
	for i := range 3 {
		if code, data := push(b); code != http.StatusServiceUnavailable {
			t.Fatalf("push %d with PostgreSQL unreachable: %d %s, want 503", i, code, data)
		}
	}
	if n := count("connection to PostgreSQL lost: reconnecting"); n != 1 {
		t.Errorf("the outage logged %d times over 3 pushes, want once:\n%s", n, log.String())
	}
	if n := count("connection to PostgreSQL back"); n != 0 {
		t.Errorf("back logged while still down:\n%s", log.String())
	}
	link.setDown(false)
	for range 2 {
		code, data := push(b) // the same batch again, then a duplicate
		if code != 200 {
			t.Fatalf("push once PostgreSQL is back: %d %s", code, data)
		}
	}
	if n := count("connection to PostgreSQL back"); n != 1 || !strings.Contains(log.String(), "down_for=") {
		t.Errorf("back logged %d times, want once with down_for:\n%s", n, log.String())
	}
}
