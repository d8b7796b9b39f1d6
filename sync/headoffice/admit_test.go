package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// tillCall sends a request to hs as till with secret and returns the
// answer (its body read) or the transport's error.
func tillCall(ctx context.Context, hs *httptest.Server, till, secret, method, path string, body []byte) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, method, hs.URL+path, bytes.NewReader(body))
	req.SetBasicAuth(till, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// demoCard is a card of the demo replica.
const demoCard = "2600000000017"

type answer struct {
	code int
	data []byte
	err  error
}

// pushAsync pushes b's JSON as till and answers on the channel.
func pushAsync(hs *httptest.Server, till, secret string, body []byte) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		resp, data, err := tillCall(context.Background(), hs, till, secret, "POST", "/v1/till/journal", body)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		ch <- answer{code: resp.StatusCode, data: data}
	}()
	return ch
}

// metricValue is the value of the series named (with its labels) in
// head office's /metrics.
func metricValue(t *testing.T, s *Server, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics:\n%s", series, rec.Body.String())
	return 0
}

// waitMetric waits (up to 10 s) until the series has the value.
func waitMetric(t *testing.T, s *Server, series string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, s, series) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", series, metricValue(t, s, series), want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTillRequestsShedWhenHeadOfficeIsFull: head office takes one till
// request at a time, and waits 300 ms for a place. Till T01's push holds
// the place (its row locked by another transaction). T02's push and its
// feed page are each answered 503 with a Retry-After of 2–6 s (4 s spread
// by half either way) and an error saying head office is busy; its card
// fetch (a cashier waiting) and ERP's requests are served. Once T01's push
// is through, T02's goes through too: nothing was written for the shed
// ones, nothing lost. A push without credentials or from an impossible
// till id is refused (401) at once, without queueing.
func TestTillRequestsShedWhenHeadOfficeIsFull(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: 300 * time.Millisecond, BusyRetryAfter: 4 * time.Second})
	ctx := context.Background()
	secret2, err := s.Enrol(ctx, "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s, "headoffice_till_requests_limit"); got != 1 {
		t.Fatalf("limit %v, want 1", got)
	}
	hold := holdTillRow(t, dsn)
	t1 := &lateTill{}
	first := pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(t1, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)

	t2 := &lateTill{till: "S001-T02"}
	body2 := mustJSON(t, accrual7(t2, demoCard))
	for _, r := range []struct {
		method, path string
		body         []byte
	}{
		{"POST", "/v1/till/journal", body2},
		{"GET", "/v1/till/feed?cursor=", nil},
	} {
		resp, data, err := tillCall(ctx, hs, "S001-T02", secret2, r.method, r.path, r.body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s while full: %d %s, want 503", r.method, r.path, resp.StatusCode, data)
		}
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || ra < 2 || ra > 6 {
			t.Errorf("%s %s: Retry-After %q, want 2-6 seconds", r.method, r.path, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(string(data), "head office is busy") || !strings.Contains(string(data), "send again in "+strconv.Itoa(ra)+" s") {
			t.Errorf("%s %s: %s, want the error to say head office is busy and when to come back", r.method, r.path, data)
		}
	}
	// A client that cannot be a till is refused at once, not queued.
	for _, who := range [][2]string{{"", ""}, {"S001 T02", secret2}} {
		resp, data, err := tillCall(ctx, hs, who[0], who[1], "POST", "/v1/till/journal", body2)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("push by %q while full: %v %v %s, want 401 without queueing", who[0], err, resp, data)
		}
	}
	resp, data, err := tillCall(ctx, hs, "S001-T02", secret2, "POST", "/v1/till/cards", []byte(`{"codes": ["`+demoCard+`"]}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("card fetch while full: %v %v %s, want it served", err, resp, data)
	}
	if code, data := httpCall(t, hs, "GET", "/v1/erp/reports/tills", nil, ""); code != 200 {
		t.Fatalf("ERP while full: %d %s", code, data)
	}
	if got := metricValue(t, s, "headoffice_till_requests_shed_total"); got != 2 {
		t.Fatalf("shed %v, want 2 (the push and the feed page)", got)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE till_id = 'S001-T02'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("T02 entries stored: %d %v, want none", n, err)
	}

	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-first
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantApplied(t, "T01's push", a.code, a.data)
	again := <-pushAsync(hs, "S001-T02", secret2, body2)
	wantApplied(t, "T02's push sent again", again.code, again.data)
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
}

// TestTillRequestWaitsForAPlace: with one place and a long queue wait, a
// push that finds the place taken waits and goes through once it frees,
// without a 503; a request whose till gives up while waiting leaves the
// queue and holds no place.
func TestTillRequestWaitsForAPlace(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, hs, secret := servedHOWith(t, Options{DSN: dsn, MaxTillRequests: 1, TillQueueWait: time.Minute})
	ctx := context.Background()
	secret2, err := s.Enrol(ctx, "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hold := holdTillRow(t, dsn)
	first := pushAsync(hs, "S001-T01", secret, mustJSON(t, accrual7(&lateTill{}, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_in_flight", 1)
	second := pushAsync(hs, "S001-T02", secret2, mustJSON(t, accrual7(&lateTill{till: "S001-T02"}, demoCard)))
	waitMetric(t, s, "headoffice_till_requests_waiting", 1)

	gone, cancel := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() {
		_, _, err := tillCall(gone, hs, "S001-T02", secret2, "GET", "/v1/till/feed?cursor=", nil)
		left <- err
	}()
	waitMetric(t, s, "headoffice_till_requests_waiting", 2)
	cancel()
	if err := <-left; err == nil {
		t.Fatal("a cancelled request was answered")
	}
	waitMetric(t, s, "headoffice_till_requests_waiting", 1)

	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for what, ch := range map[string]<-chan answer{"T01's push": first, "T02's push, queued": second} {
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		wantApplied(t, what, a.code, a.data)
	}
	waitMetric(t, s, "headoffice_till_requests_in_flight", 0)
	waitMetric(t, s, "headoffice_till_requests_waiting", 0)
	if got := metricValue(t, s, "headoffice_till_requests_shed_total"); got != 0 {
		t.Fatalf("shed %v, want 0", got)
	}
}

// TestTillRequestsUnbounded: MaxTillRequests -1 takes every request at
// once (no limit in /metrics).
func TestTillRequestsUnbounded(t *testing.T) {
	s, _, _ := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxTillRequests: -1})
	if got := metricValue(t, s, "headoffice_till_requests_limit"); got != 0 {
		t.Fatalf("limit %v, want 0 (none)", got)
	}
	s2, _, _ := servedHOWith(t, Options{DSN: pgtest.DSN(t), MaxConns: 5})
	if got := metricValue(t, s2, "headoffice_till_requests_limit"); got != 10 {
		t.Fatalf("default limit %v with a pool of 5, want 10", got)
	}
}
