package headoffice

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"tillagent/sync/pgtest"
)

// TestMetricsCardinality: a client cannot make series: methods the
// mux does not know, paths no route has, path tricks (dot segments,
// double slashes, encoded slashes, till ids, card codes, long paths) all
// count under a route pattern or "unmatched", and the status label is a
// status.
func TestMetricsCardinality(t *testing.T) {
	s := openTest(t)
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	paths := []string{"/", "/x", "/v1/till/feed", "/v1/till/feed/", "/v1//till/feed", "/v1/till/../erp/cards",
		"/v1/erp/cards/%2Fetc%2Fpasswd", "/v1/erp/cards/2900000000018", "/v1/erp/cards/" + strings.Repeat("9", 500), "/healthz", "/metrics",
		"/v1/erp/rejected?till=../../x", "/%00", "/v1/erp/import"}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "FOO", "get"}
	for i := 0; i < 3; i++ {
		for _, p := range paths {
			for _, m := range methods {
				req, err := http.NewRequest(m, api.URL+p+fmt.Sprintf("?n=%d", i), strings.NewReader("{}"))
				if err != nil {
					continue
				}
				req.Header.Set("Authorization", fmt.Sprintf("Bearer junk-%d", i))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}
	var b bytes.Buffer
	s.Metrics().Write(context.Background(), &b)
	re := regexp.MustCompile(`(?m)^headoffice_http_requests_total\{route="([^"]*)",code="([^"]*)"\} `)
	series := re.FindAllStringSubmatch(b.String(), -1)
	routes := map[string]bool{}
	for _, m := range series {
		routes[m[1]] = true
		if !regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(m[2]) {
			t.Errorf("status label %q", m[2])
		}
		if m[1] != "unmatched" && !regexp.MustCompile(`^[A-Z]+ /[a-z0-9/{}._-]*$`).MatchString(m[1]) {
			t.Errorf("route label %q is not a pattern", m[1])
		}
	}
	if len(series) == 0 || len(series) > 40 {
		t.Errorf("%d request series after %d requests of junk:\n%s", len(series), 3*len(paths)*len(methods), b.String())
	}
	t.Logf("%d series, routes %v", len(series), routes)
}

// TestHealthzPoolExhausted: every connection of the pool held by long
// requests: /healthz answers 503 after its 2 s, not later, and a /metrics
// scrape answers within the same 2 s (the pool gauges in it); with the
// pool back, 200.
func TestHealthzPoolExhausted(t *testing.T) {
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	mon := httptest.NewServer(s.MetricsHandler())
	defer mon.Close()
	ctx := context.Background()
	c1, err := s.DB().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := s.DB().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := http.Get(mon.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	code, body, took := get("/healthz")
	if code != 503 || took > 2800*time.Millisecond || took < 1900*time.Millisecond {
		t.Errorf("healthz with the pool exhausted: %d in %v: %s", code, took, body)
	}
	s.noteSeen("S001-T01", "x") // a flush pending too: it must not double the wait
	code, body, took = get("/metrics")
	if code != 200 || took > 2800*time.Millisecond || !strings.Contains(body, "headoffice_db_pool_acquired_conns 2\n") {
		t.Errorf("metrics with the pool exhausted: %d in %v:\n%s", code, took, body)
	}
	c1.Release()
	c2.Release()
	if code, body, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz after: %d %s", code, body)
	}
}

// TestAgentText: the User-Agent a till sends is kept as valid UTF-8
// without NUL; a CTL other than tab is refused by net/http itself (400),
// obs-text bytes that are not UTF-8 are dropped, and a tab is kept
// (cmd/headoffice's tills table is tab-aligned: see
// TestTillsTableAgentTab).
func TestAgentText(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	raw := func(agent string) string {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(api.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req, _ := http.NewRequest("GET", api.URL+"/v1/till/feed?snapshot=1&limit=1", nil)
		req.SetBasicAuth("S001-T01", secret)
		fmt.Fprintf(conn, "GET /v1/till/feed?snapshot=1&limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n",
			req.Header.Get("Authorization"), agent)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	agentNow := func() string {
		t.Helper()
		ts, err := s.Tills(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ts[0].Agent
	}
	if st := raw("tillagent/1\x1b[31mred"); !strings.HasPrefix(st, "400") {
		t.Errorf("an agent with ESC: %s, want 400 from net/http", st)
	}
	if st := raw("tillagent/\xff\xfe1.0"); !strings.HasPrefix(st, "200") {
		t.Errorf("an agent of obs-text: %s", st)
	}
	if a := agentNow(); a != "tillagent/1.0" || !utf8.ValidString(a) {
		t.Errorf("agent of bytes not UTF-8 kept as %q", a)
	}
	if st := raw("tillagent/1.0\tfake\tcolumns"); !strings.HasPrefix(st, "200") {
		t.Errorf("an agent with tabs: %s", st)
	}
	if a := agentNow(); a != "tillagent/1.0\tfake\tcolumns" {
		t.Logf("agent with tabs kept as %q", a)
	}
}

// TestReenrolledTillLastSeen: a till heard from, retired (stolen), and
// enrolled again for its replacement, not installed yet: the tills report
// and the metrics say it was never heard from since (its new secret may
// never have reached it), not the old box's last-seen time and build.
func TestReenrolledTillLastSeen(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	s.noteSeen("S001-T01", "tillagent/1.0-old-box")
	if err := s.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retire(ctx, "S001-T01"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	ts, err := s.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if x := ts[0]; x.LastSeenAt != nil && !x.LastSeenAt.After(x.EnrolledAt) {
		t.Errorf("re-enrolled till: last seen %v by %q, before its enrolment %v; want never (since enrolment)", x.LastSeenAt, x.Agent, x.EnrolledAt)
	}
	var b bytes.Buffer
	s.Metrics().Write(ctx, &b)
	if !strings.Contains(b.String(), "\nheadoffice_tills_never_seen 1\n") {
		t.Errorf("re-enrolled till not counted never seen:\n%s", b.String())
	}
}

// TestReenrolledTillLastSeenByAnotherProcess: as TestReenrolledTillLastSeen,
// but the old box's last poll was served by another head-office process,
// b, whose note is still unwritten when the till is retired and enrolled
// again through a: b's flush after it writes nothing for the new box.
// Before, it wrote the old box's time and build for it (found by the QA
// pass).
func TestReenrolledTillLastSeenByAnotherProcess(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var servers [2]*Server
	for i := range servers {
		s, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		servers[i] = s
	}
	a, b := servers[0], servers[1]
	if _, err := a.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	b.noteSeen("S001-T01", "tillagent/1.0-old-box")
	if _, err := a.Retire(ctx, "S001-T01"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := a.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	if err := b.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	ts, err := a.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if x := ts[0]; x.LastSeenAt != nil {
		t.Errorf("re-enrolled till: last seen %v by %q, before its enrolment %v; want never", x.LastSeenAt, x.Agent, x.EnrolledAt)
	}
	b.noteSeen("S001-T01", "tillagent/1.1-new-box")
	if err := b.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, err := a.Tills(ctx); err != nil || ts[0].Agent != "tillagent/1.1-new-box" {
		t.Fatalf("the new box heard from through b: %+v, %v", ts, err)
	}
}

// qaTills enrols n tills of store S001 straight in the table (Enrol one
// by one is slow), S001-Q0000…
func qaTills(t *testing.T, s *Server, n int) []string {
	t.Helper()
	if _, err := s.db.Exec(context.Background(), `INSERT INTO tills (till_id, store_id, secret_sha256)
		SELECT 'S001-Q' || lpad(i::text, 4, '0'), 'S001', '\x00'::bytea FROM generate_series(0, $1 - 1) AS i`, n); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("S001-Q%04d", i)
	}
	return ids
}

// TestTwoServersFlushTogether: two head-office processes on one
// database, every till polling both (a load balancer), flush at the same
// moment: the rows are written in id order, so the two never deadlock
// (in map order they did, 5 times in 16), and the newest note wins.
func TestTwoServersFlushTogether(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	a, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := a.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	ids := qaTills(t, a, 400)
	failed := 0
	const rounds = 3
	for round := 0; round < rounds; round++ {
		for _, id := range ids {
			a.noteSeen(id, fmt.Sprintf("a/%d", round))
		}
		for _, id := range ids {
			b.noteSeen(id, fmt.Sprintf("b/%d", round)) // later: b's note wins
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*Server{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.flushSeen(ctx) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				failed++
				t.Logf("round %d: %v", round, err)
			}
		}
	}
	// Whatever failed is kept for the next flush; after it, b's last
	// notes stand.
	if err := a.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	n := count(t, a, `SELECT count(*) FROM till_seen WHERE last_agent = $1`, fmt.Sprintf("b/%d", rounds-1))
	if n != len(ids) {
		t.Errorf("%d of %d tills show the newest note", n, len(ids))
	}
	if failed > 0 {
		t.Errorf("%d of %d concurrent flushes failed (deadlock between the two processes' UPDATEs)", failed, 2*rounds)
	}
}

// TestFlushWaitsBehindAnIngest: a long transaction holding a till's row
// (an ingest holds it for the whole batch) holds up neither the flush nor
// another till's push, nor a scrape's database gauges: the notes live in
// till_seen, which pushes never lock. Written to tills, the flush waited
// on that row holding the rows it had updated, and another till's push
// timed out behind it.
func TestFlushWaitsBehindAnIngest(t *testing.T) {
	now := demoNow
	const card = "3400000000071"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	ctx := context.Background()
	ids := qaTills(t, s, 50)
	// The last till's long transaction (a big batch): its row locked.
	long := ids[len(ids)-1]
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tills WHERE till_id = $1 FOR UPDATE`, long); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		s.noteSeen(id, "tillagent/x")
	}
	// A scrape: its flush waits on T01's row.
	scraped := make(chan string)
	go func() {
		var b bytes.Buffer
		s.Metrics().Write(ctx, &b)
		scraped <- b.String()
	}()
	time.Sleep(300 * time.Millisecond)
	// Another till pushes meanwhile.
	var lt lateTill
	lt.till = ids[0]
	pushCtx, cancel := context.WithTimeout(ctx, 1*time.Second)
	defer cancel()
	start := time.Now()
	_, perr := s.Ingest(pushCtx, lt.batch(spendFrom(card, "A", "c1", "1")))
	took := time.Since(start)
	if perr != nil {
		t.Errorf("till %s's push, unrelated to "+long+", waited %v behind the flush: %v", ids[0], took.Round(time.Millisecond), perr)
	}
	out := <-scraped
	if !strings.Contains(out, "headoffice_tills_enrolled ") {
		t.Errorf("a scrape during a long ingest lost its database gauges (tills_enrolled missing)")
	}
}
