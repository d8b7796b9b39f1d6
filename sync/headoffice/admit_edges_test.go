package headoffice

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// Edge cases of the admission of till requests (admit.go): places never leak
// whatever a request's fate, waiters are all answered, a shed request
// writes nothing, and Retry-After keeps to its spread.

// edgeJournalRows counts head office's journal rows of till (and how many
// distinct entry ids they hold).
func edgeJournalRows(t *testing.T, s *Server, till string) (rows, ids int) {
	t.Helper()
	if err := s.db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id) FROM journal WHERE till_id = $1`, till).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	return rows, ids
}

// edgeRaw opens a TCP connection to hs and writes head (request line and
// headers, without the blank line) then body; the test reads or closes it.
func edgeRaw(t *testing.T, hs *httptest.Server, head string, body []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

func edgeBasic(till, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(till+":"+secret))
}

// edgeQuietServer serves h over loopback with net/http's own log (a
// recovered panic's stack) discarded.
func edgeQuietServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	hs := httptest.NewUnstartedServer(h)
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.Start()
	t.Cleanup(hs.Close)
	return hs
}

// TestPanicFreesThePlace: a till handler that panics under the
// admission (a bug; nothing in head office recovers, net/http does, per
// connection) gives its place back: with one place, three panics in a row
// (a plain one, http.ErrAbortHandler, and one after the answer started)
// leave nothing in flight, and the next push is applied at once, not
// shed.
func TestPanicFreesThePlace(t *testing.T) {
	s, _, secret := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxTillRequests: 1, TillQueueWait: 200 * time.Millisecond, BusyRetryAfter: time.Second})
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	queued := func(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return s.till(func(w http.ResponseWriter, r *http.Request, _, _ string) { h(w, r) }, true)
	}
	mux.HandleFunc("/qa/panic", queued(func(http.ResponseWriter, *http.Request) { panic("qa: a bug in a till handler") }))
	mux.HandleFunc("/qa/abort", queued(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	mux.HandleFunc("/qa/half", queued(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		w.Write([]byte(`{"results": [`))
		w.(http.Flusher).Flush()
		panic("qa: a bug half way through the answer")
	}))
	hs := edgeQuietServer(t, mux)
	for _, path := range []string{"/qa/panic", "/qa/abort", "/qa/half"} {
		resp, data, err := tillCall(context.Background(), hs, "S001-T01", secret, "GET", path, nil)
		if err == nil && resp.StatusCode == 200 && strings.HasPrefix(string(data), `{"results": [`) {
			err = fmt.Errorf("answer cut short") // the half answer: 200, then the connection closed
		}
		if err == nil {
			t.Fatalf("%s: answered %d %s, want the connection dropped (the handler panicked)", path, resp.StatusCode, data)
		}
		waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	}
	a := <-pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(&lateTill{}, demoCard)))
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantApplied(t, "push after three panics", a.code, a.data)
	if n := metricValue(t, s, "headoffice_till_requests_shed_total"); n != 0 {
		t.Fatalf("shed %v, want 0: a place leaked", n)
	}
}

// TestFailedRequestsFreeThePlace: with one place and a short queue wait,
// till requests that fail in every way head office refuses one (no
// credentials, a wrong secret, an id no till has, a body that is not
// gzip though it says so, a gzip body cut short, an unknown coding, JSON
// that does not parse, another till's batch, a parameter twice on the
// feed) are each answered with their own status, not a 503 (a place
// leaked by the one before would shed it), nothing is in flight after
// each, nothing is written, and a good push is then applied.
func TestFailedRequestsFreeThePlace(t *testing.T) {
	s, hs, secret := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxTillRequests: 1, TillQueueWait: 200 * time.Millisecond, BusyRetryAfter: time.Second})
	good := mustJSON(t, accrual7(&lateTill{}, demoCard))
	var packed bytes.Buffer
	zw := gzip.NewWriter(&packed)
	zw.Write(good)
	zw.Close()
	cut := packed.Bytes()[:packed.Len()/2]
	other := mustJSON(t, accrual7(&lateTill{till: "S001-T02"}, demoCard))
	for _, c := range []struct {
		what, method, path, auth, coding string
		body                             []byte
		want                             int
	}{
		{"no credentials", "POST", "/v1/till/journal", "", "", good, 401},
		{"wrong secret", "POST", "/v1/till/journal", edgeBasic("S001-T01", "not-the-secret"), "", good, 401},
		{"unknown till", "POST", "/v1/till/journal", edgeBasic("S001-T99", secret), "", good, 401},
		{"not gzip", "POST", "/v1/till/journal", edgeBasic("S001-T01", secret), "gzip", []byte("this is not gzip at all"), 400},
		{"gzip cut short", "POST", "/v1/till/journal", edgeBasic("S001-T01", secret), "gzip", cut, 400},
		{"unknown coding", "POST", "/v1/till/journal", edgeBasic("S001-T01", secret), "br", good, 415},
		{"bad JSON", "POST", "/v1/till/journal", edgeBasic("S001-T01", secret), "", []byte(`{"till_id": "S001-T01", "entries": [`), 400},
		{"another till's batch", "POST", "/v1/till/journal", edgeBasic("S001-T01", secret), "", other, 403},
		{"feed, parameter twice", "GET", "/v1/till/feed?cursor=&cursor=", edgeBasic("S001-T01", secret), "", nil, 400},
		{"feed, wrong secret", "GET", "/v1/till/feed?cursor=", edgeBasic("S001-T01", "nope"), "", nil, 401},
	} {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, bytes.NewReader(c.body))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.coding != "" {
			req.Header.Set("Content-Encoding", c.coding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s: %d %s, want %d", c.what, resp.StatusCode, data, c.want)
		}
		waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	}
	if rows, _ := edgeJournalRows(t, s, "S001-T01"); rows != 0 {
		t.Fatalf("%d journal rows after refused requests, want none", rows)
	}
	a := <-pushAsync(hs, "S001-T01", secret, good)
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantApplied(t, "push after the failed requests", a.code, a.data)
	if n := metricValue(t, s, "headoffice_till_requests_shed_total"); n != 0 {
		t.Fatalf("shed %v, want 0", n)
	}
}

// TestClientGoneFreesThePlace: a till half way through sending its
// body holds no place (the body is read before the request waits: another
// till's push is applied meanwhile with one place), and once it closes
// its connection nothing of it is written. A till that goes away after
// sending it all, while head office waits on the database for it (its
// till row locked elsewhere), frees the place: the ingest is cancelled
// with the request while the lock is still held. Neither wrote a row; the
// till's push sent again is applied once.
func TestClientGoneFreesThePlace(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: 200 * time.Millisecond, BusyRetryAfter: time.Second})
	body := mustJSON(t, accrual7(&lateTill{}, demoCard))
	ids, secrets := edgeHerdTills(t, s, 2)

	// Half a body sent by one till; another till's push goes through.
	half := mustJSON(t, accrual7(&lateTill{till: ids[0]}, demoCard))
	conn := edgeRaw(t, hs, "POST /v1/till/journal HTTP/1.1\nHost: ho\nContent-Type: application/json\nAuthorization: "+edgeBasic(ids[0], secrets[0])+
		"\nContent-Length: "+strconv.Itoa(len(half)), half[:len(half)/2])
	other := <-pushAsync(hs, ids[1], secrets[1], mustJSON(t, accrual7(&lateTill{till: ids[1]}, demoCard)))
	wantApplied(t, "a push while another till uploads", other.code, other.data)
	conn.Close()
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	if rows, _ := edgeJournalRows(t, s, ids[0]); rows != 0 {
		t.Fatalf("%d journal rows of the half-sent push, want none", rows)
	}

	// All sent, head office blocked on the till's row, the till gives up.
	hold := holdTillRow(t, dsn)
	gone, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, _, err := tillCall(gone, hs, "S001-T01", secret, "POST", "/v1/till/journal", body)
		left <- err
	}()
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)
	time.Sleep(50 * time.Millisecond) // into the ingest, waiting on the lock
	cancel()
	if err := <-left; err == nil {
		t.Fatal("the push given up was answered")
	}
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	if rows, _ := edgeJournalRows(t, s, "S001-T01"); rows != 0 {
		t.Fatalf("%d journal rows while the lock is held, want none", rows)
	}
	if err := hold.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows, _ := edgeJournalRows(t, s, "S001-T01"); rows != 0 {
		t.Fatalf("%d journal rows of the pushes given up, want none", rows)
	}
	a := <-pushAsync(hs, "S001-T01", secret, body)
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantApplied(t, "the push sent again", a.code, a.data)
	if rows, ids := edgeJournalRows(t, s, "S001-T01"); rows != 1 || ids != 1 {
		t.Fatalf("journal rows %d (ids %d), want the one entry once", rows, ids)
	}
}

// edgeHerdTills enrols n tills S001-Q00.. and returns their ids and secrets.
func edgeHerdTills(t *testing.T, s *Server, n int) (ids, secrets []string) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("S001-Q%02d", i)
		sec, err := s.Enrol(context.Background(), id, "S001")
		if err != nil {
			t.Fatal(err)
		}
		ids, secrets = append(ids, id), append(secrets, sec)
	}
	return ids, secrets
}

// edgeAnswer is one push's answer: status, Retry-After, results.
type edgeAnswer struct {
	till       int
	code       int
	retryAfter string
	data       []byte
	err        error
}

func edgePushAll(hs *httptest.Server, ids, secrets []string, bodies [][]byte, which []int) []edgeAnswer {
	out := make([]edgeAnswer, len(which))
	var wg sync.WaitGroup
	for k, i := range which {
		wg.Go(func() {
			resp, data, err := tillCall(context.Background(), hs, ids[i], secrets[i], "POST", "/v1/till/journal", bodies[i])
			out[k] = edgeAnswer{till: i, err: err, data: data}
			if err == nil {
				out[k].code, out[k].retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
			}
		})
	}
	wg.Wait()
	return out
}

// edgeCheckShed: a 503 with a Retry-After of 1-3 s (BusyRetryAfter 1.5 s:
// 0.75-2.25 s rounded up) that the error repeats.
func edgeCheckShed(t *testing.T, a edgeAnswer) int {
	t.Helper()
	ra, err := strconv.Atoi(a.retryAfter)
	if a.code != 503 || err != nil || ra < 1 || ra > 3 {
		t.Fatalf("till %d: %d Retry-After %q %s, want 503 with Retry-After 1-3", a.till, a.code, a.retryAfter, a.data)
	}
	if !strings.Contains(string(a.data), "head office is busy") || !strings.Contains(string(a.data), "send again in "+a.retryAfter+" s") {
		t.Fatalf("till %d: %s, want it to say head office is busy and the Retry-After", a.till, a.data)
	}
	return ra
}

// TestHerdOfFifty: 50 tills push at once at a head office of two places
// (queue wait 300 ms, BusyRetryAfter 1.5 s), their rows locked: two take
// the places, 48 wait and are all shed with a 503 and a Retry-After of
// 1-3 s (more than one value: spread), writing nothing; nothing is left
// waiting. Once the rows are free the two are applied. Then all 50 push
// the same batches again, at once, and again after each 503 until every
// one is answered 200: each answer is a 200 or a 503 with Retry-After,
// none lost; the 48 are applied, the two are duplicates; the journal
// holds each till's entry exactly once; nothing in flight or waiting; the
// shed counter and the 503s in /metrics match the 503s the tills saw.
func TestHerdOfFifty(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, _ := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 2, TillQueueWait: 300 * time.Millisecond, BusyRetryAfter: 1500 * time.Millisecond})
	ids, secrets := edgeHerdTills(t, s, 50)
	bodies := make([][]byte, len(ids))
	all := make([]int, len(ids))
	for i, id := range ids {
		bodies[i], all[i] = mustJSON(t, accrual7(&lateTill{till: id}, demoCard)), i
	}
	ctx := context.Background()
	hold, err := pgConn(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, `SELECT 1 FROM tills WHERE till_id LIKE 'S001-Q%' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan []edgeAnswer, 1)
	go func() { done <- edgePushAll(hs, ids, secrets, bodies, all) }()
	waitMetric(t, s, "headoffice_till_requests_shed_total", 48)
	waitMetric(t, s, "headoffice_till_requests_waiting", 0)
	if n := metricValue(t, s, "headoffice_till_requests_in_flight"); n != 2 {
		t.Fatalf("in flight %v with the rows locked, want 2", n)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE till_id LIKE 'S001-Q%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("journal rows while every push waits: %d %v, want none", n, err)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	shed503, seen := 0, map[int]bool{}
	applied := map[int]bool{}
	for _, a := range <-done {
		switch {
		case a.err != nil:
			t.Fatalf("till %d: %v", a.till, a.err)
		case a.code == 200:
			wantApplied(t, ids[a.till], a.code, a.data)
			applied[a.till] = true
		default:
			seen[edgeCheckShed(t, a)] = true
			shed503++
		}
	}
	if len(applied) != 2 || shed503 != 48 {
		t.Fatalf("%d applied, %d shed, want 2 and 48", len(applied), shed503)
	}
	if len(seen) < 2 {
		t.Errorf("48 sheds all told Retry-After %v: not spread", seen)
	}
	for i, id := range ids {
		rows, _ := edgeJournalRows(t, s, id)
		if want := map[bool]int{true: 1}[applied[i]]; rows != want {
			t.Fatalf("till %s: %d journal rows, want %d", id, rows, want)
		}
	}

	// All push again; each 503 is pushed again (sooner than its
	// Retry-After: this is about head office, not the till's wait).
	left := all
	for round := 0; len(left) > 0; round++ {
		if round == 50 {
			t.Fatalf("%d tills still shed after 50 rounds", len(left))
		}
		var again []int
		for _, a := range edgePushAll(hs, ids, secrets, bodies, left) {
			switch {
			case a.err != nil:
				t.Fatalf("till %d: %v", a.till, a.err)
			case a.code == 503:
				edgeCheckShed(t, a)
				shed503++
				again = append(again, a.till)
			default:
				want := wire.Applied
				if applied[a.till] {
					want = wire.Duplicate
				}
				var res wire.BatchResult
				if a.code != 200 || json.Unmarshal(a.data, &res) != nil {
					t.Fatalf("till %d: %d %s", a.till, a.code, a.data)
				}
				wantStatuses(t, ids[a.till], &res, want)
				applied[a.till] = true
			}
		}
		left = again
	}
	for _, id := range ids {
		if rows, ids := edgeJournalRows(t, s, id); rows != 1 || ids != 1 {
			t.Fatalf("till %s: %d journal rows (%d ids), want its entry once", id, rows, ids)
		}
	}
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	waitMetric(t, s, "headoffice_till_requests_waiting", 0)
	if n := metricValue(t, s, "headoffice_till_requests_shed_total"); int(n) != shed503 {
		t.Fatalf("shed counter %v, the tills saw %d 503s", n, shed503)
	}
	if n := metricValue(t, s, `headoffice_http_requests_total{route="POST /v1/till/journal",code="503"}`); int(n) != shed503 {
		t.Fatalf("503s counted %v, the tills saw %d", n, shed503)
	}
}

// TestRetryAfterSpread: every Retry-After shed gives is BusyRetryAfter
// spread over half to one and a half times, in whole seconds rounded up,
// at least 1, and the error names the same number. Over 3000 sheds each
// value of the range is seen for 1 s (1, 2) and 1.5 s (1, 2, 3); a
// millisecond is always 1 s.
func TestRetryAfterSpread(t *testing.T) {
	for _, c := range []struct {
		busy   time.Duration
		lo, hi int
		all    bool // every value lo..hi seen
	}{
		{time.Millisecond, 1, 1, true},
		{time.Second, 1, 2, true},
		{1500 * time.Millisecond, 1, 3, true},
		{4 * time.Second, 2, 6, false}, // 2 only at exactly 2 s
		{15 * time.Second, 8, 23, false},
	} {
		s, _, _ := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxTillRequests: 1, BusyRetryAfter: c.busy})
		seen := map[int]int{}
		for range 3000 {
			rec := httptest.NewRecorder()
			s.shed(rec, httptest.NewRequest("POST", "/v1/till/journal", nil))
			ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
			if rec.Code != 503 || err != nil || ra < c.lo || ra > c.hi {
				t.Fatalf("BusyRetryAfter %v: %d Retry-After %q, want 503 and %d-%d", c.busy, rec.Code, rec.Header().Get("Retry-After"), c.lo, c.hi)
			}
			if !strings.Contains(rec.Body.String(), "send again in "+strconv.Itoa(ra)+" s") {
				t.Fatalf("BusyRetryAfter %v: %s does not name Retry-After %d", c.busy, rec.Body.String(), ra)
			}
			seen[ra]++
		}
		if c.all {
			for v := c.lo; v <= c.hi; v++ {
				if seen[v] == 0 {
					t.Errorf("BusyRetryAfter %v: Retry-After %d never given in 3000 sheds (%v)", c.busy, v, seen)
				}
			}
		}
		if n := metricValue(t, s, "headoffice_till_requests_shed_total"); n != 3000 {
			t.Errorf("BusyRetryAfter %v: shed counter %v, want 3000", c.busy, n)
		}
	}
}

// TestShedPushWritesNothing: a push's body is read before it waits for
// a place (so a till that goes away while waiting leaves the queue): sent
// with Expect: 100-continue while head office is full, it is asked for
// its body at once (100 Continue), then answered 503 with Retry-After,
// and nothing of it is written. The same request with a place free is
// asked for its body, and applied.
func TestShedPushWritesNothing(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: 100 * time.Millisecond, BusyRetryAfter: time.Second})
	secret2, err := s.Enrol(context.Background(), "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	body := mustJSON(t, accrual7(&lateTill{till: "S001-T02"}, demoCard))
	head := "POST /v1/till/journal HTTP/1.1\nHost: ho\nContent-Type: application/json\nExpect: 100-continue\nAuthorization: " +
		edgeBasic("S001-T02", secret2) + "\nContent-Length: " + strconv.Itoa(len(body))

	hold := holdTillRow(t, dsn)
	first := pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(&lateTill{}, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)
	conn := edgeRaw(t, hs, head, nil)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br0 := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusContinue {
		t.Fatalf("push while full: %d, want 100 Continue (its body read before it waits)", resp.StatusCode)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if resp, err = http.ReadResponse(br0, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("push shed: %d %s, want 503 with Retry-After", resp.StatusCode, data)
	}
	conn.Close()
	if rows, _ := edgeJournalRows(t, s, "S001-T02"); rows != 0 {
		t.Fatalf("%d rows of the shed push, want none", rows)
	}
	hold.Rollback(context.Background())
	if a := <-first; a.err != nil || a.code != 200 {
		t.Fatalf("T01's push: %+v", a)
	}

	conn = edgeRaw(t, hs, head, nil)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusContinue {
		t.Fatalf("push with a place free: %d, want 100 Continue (the body asked for)", resp.StatusCode)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	wantApplied(t, "T02's push sent again", resp.StatusCode, data)
	if rows, ids := edgeJournalRows(t, s, "S001-T02"); rows != 1 || ids != 1 {
		t.Fatalf("T02: %d rows (%d ids), want its entry once", rows, ids)
	}
}

// TestShedLargeBody: a push of a body bigger than net/http drains by
// itself (256 KiB) that is shed still gets its 503 and Retry-After to the
// till's Go client, not a cut connection (which the till would take for
// the network, and retry on its backoff, not the Retry-After). Five in a
// row, each on a fresh connection.
func TestShedLargeBody(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: 50 * time.Millisecond, BusyRetryAfter: time.Second})
	secret2, err := s.Enrol(context.Background(), "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hold := holdTillRow(t, dsn)
	first := pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(&lateTill{}, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)
	big := bytes.Repeat([]byte(" "), 4<<20) // 4 MiB of JSON white space
	for i := range 5 {
		req, _ := http.NewRequest("POST", hs.URL+"/v1/till/journal", bytes.NewReader(big))
		req.SetBasicAuth("S001-T02", secret2)
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("big push %d while full: %v, want a 503 with Retry-After", i, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("big push %d while full: %d %s, want 503 with Retry-After", i, resp.StatusCode, data)
		}
	}
	hold.Rollback(context.Background())
	if a := <-first; a.err != nil || a.code != 200 {
		t.Fatalf("T01's push: %+v", a)
	}
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
}

// TestGonePushLeavesTheQueue: enter's promise "a request whose client
// went away while it waited is dropped" holds for a push too, not only a
// feed page (TestTillRequestWaitsForAPlace): till T02's push waits for
// the only place (queue wait 2 s), then T02 gives up (its request
// timeout, a cut link: the connection closed). Within a second nothing is
// waiting; once the place frees, T02's push is not worked on (no row) and
// nothing was shed.
func TestGonePushLeavesTheQueue(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: 2 * time.Second, BusyRetryAfter: time.Second})
	secret2, err := s.Enrol(context.Background(), "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hold := holdTillRow(t, dsn)
	first := pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(&lateTill{}, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)
	gone, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, _, err := tillCall(gone, hs, "S001-T02", secret2, "POST", "/v1/till/journal", mustJSON(t, accrual7(&lateTill{till: "S001-T02"}, demoCard)))
		left <- err
	}()
	waitMetric(t, s, "headoffice_till_requests_waiting", 1)
	cancel()
	if err := <-left; err == nil {
		t.Fatal("the push given up was answered")
	}
	gaveUp := time.Now()
	for metricValue(t, s, "headoffice_till_requests_waiting") != 0 {
		if time.Since(gaveUp) > time.Second {
			t.Errorf("a push whose till went away is still waiting for a place a second later (the queue wait is 2 s)")
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := hold.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := <-first; a.err != nil || a.code != 200 {
		t.Fatalf("T01's push: %+v", a)
	}
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	waitMetric(t, s, "headoffice_till_requests_waiting", 0)
	if rows, _ := edgeJournalRows(t, s, "S001-T02"); rows != 0 {
		t.Errorf("the push whose till went away while waiting was worked on after: %d journal rows", rows)
	}
	if n := metricValue(t, s, "headoffice_till_requests_shed_total"); n != 0 {
		t.Errorf("shed %v, want 0 (the gone push was dropped, not shed)", n)
	}
}

// TestShedLogRateLimited: a herd logs "till requests shed" once, not a
// line a request; the next line, 10 s on, counts the sheds since the
// last one (here 101: the 100 held back and its own).
func TestShedLogRateLimited(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	s, _, _ := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxTillRequests: 3, BusyRetryAfter: time.Second, Logger: logger})
	lines := func() (shed []float64) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(logged.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && strings.HasPrefix(fmt.Sprint(rec["msg"]), "till requests shed") {
				n, _ := rec["shed"].(float64)
				if rec["limit"] != float64(3) || rec["route"] != "POST /v1/till/journal" {
					t.Errorf("shed line %s: want limit 3 and the route", l)
				}
				shed = append(shed, n)
			}
		}
		return shed
	}
	shedOne := func() {
		req := httptest.NewRequest("POST", "/v1/till/journal", nil)
		req.Pattern = "POST /v1/till/journal"
		s.shed(httptest.NewRecorder(), req)
	}
	for range 101 {
		shedOne()
	}
	if got := lines(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("101 sheds at once logged %v, want one line counting 1", got)
	}
	s.admission.loggedAt.Add(-int64(11 * time.Second)) // 11 s later
	shedOne()
	if got := lines(); len(got) != 2 || got[1] != 101 {
		t.Fatalf("lines %v, want a second counting the 101 since the first", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
