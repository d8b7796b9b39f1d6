package e2e

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/sync/client"
)

// hoMetric is the value of a series of head office's /metrics.
func hoMetric(t *testing.T, h *ho, series string) float64 {
	t.Helper()
	v := metricOf(h, series)
	if v < 0 {
		t.Fatalf("no %s in head office's /metrics", series)
	}
	return v
}

// metricOf is hoMetric callable off the test's goroutine (-1 when absent).
func metricOf(h *ho, series string) float64 {
	rec := httptest.NewRecorder()
	h.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// waitHOMetric waits (up to 10 s) until head office's series has the value.
func waitHOMetric(t *testing.T, h *ho, series string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); metricOf(h, series) != want; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", series, metricOf(h, series), want)
		}
	}
}

// waitFailed waits (up to 20 s) for a status the loop has settled on: a
// next attempt set, after a failed cycle.
func waitFailed(t *testing.T, tl *till) client.Status {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := tl.c.Status(); !st.NextAttempt.IsZero() && st.State == "failing" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("till %s: no failed cycle: %+v", tl.id, tl.c.Status())
		}
	}
}

// TestTillWaitsOutHeadOfficeBusy: head office takes one till request at a
// time (waiting 200 ms for a place) and tells the others to come back in
// 2–6 s. Till C's push holds the place (its row locked at head office).
// Till B's sync now is told head office is busy (FailOverloaded, the
// Retry-After in the error); so is till A's loop, which then waits the
// Retry-After before its next cycle instead of its 5–10 ms backoff, and
// till D's, whose sync.backoff_max of 500 ms it does not wait past. Once
// C's push is through, the sales of A, C and D are all pushed: nothing
// lost.
func TestTillWaitsOutHeadOfficeBusy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &ho{t: t, dsn: pgDSN(t)}
	h.admit.max, h.admit.wait, h.admit.retryWait = 1, 200*time.Millisecond, 4*time.Second
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	// A and D run their loops from the start, as the agent does.
	a := newTillWith(t, h, p, "S001-T61", "S001", 0, func(o *client.Options) { o.BackoffMax = time.Minute })
	d := newTillWith(t, h, p, "S001-T64", "S001", 0, func(o *client.Options) { o.BackoffMax = 500 * time.Millisecond })
	for _, tl := range []*till{a, d} {
		go tl.c.Run(ctx)
		for deadline := time.Now().Add(20 * time.Second); !tl.c.Status().ReplicaLoaded || tl.c.Status().State != "ok"; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("till %s did not load its replica: %+v", tl.id, tl.c.Status())
			}
		}
	}
	b := newTill(t, h, p, "S001-T62", "S001", 0)
	c := newTillWith(t, h, p, "S001-T63", "S001", 0, func(o *client.Options) { o.RequestTimeout = time.Minute })
	syncEach(t, b, c)

	c.sell(t, card13, basket(), "")
	conn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	hold, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(context.Background())
	if _, err := hold.Exec(ctx, `SELECT 1 FROM tills WHERE till_id = 'S001-T63' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cDone := make(chan error, 1)
	go func() { cDone <- c.c.SyncNow(ctx) }()
	waitHOMetric(t, h, "headoffice_till_requests_in_flight", 1) // till C's push holds the place

	err = b.c.SyncNow(ctx)
	var ae *client.AnswerError
	if client.FailureKind(err) != client.FailOverloaded || !errors.As(err, &ae) || ae.RetryAfter < 2*time.Second || ae.RetryAfter > 6*time.Second {
		t.Fatalf("sync now while head office is full: %v (kind %s), want overloaded with a Retry-After of 2-6 s", err, client.FailureKind(err))
	}
	a.sell(t, card13, basket(), "")
	d.sell(t, card13, basket(), "")
	st := waitFailed(t, a)
	if wait := st.NextAttempt.Sub(st.LastAttempt); wait < 2*time.Second || wait > 6*time.Second {
		t.Errorf("till A's loop waits %v after being shed, want the Retry-After (2-6 s)", wait)
	}
	if !strings.Contains(st.LastError, "head office is busy") {
		t.Errorf("till A's last error %q does not say head office is busy", st.LastError)
	}
	if st := waitFailed(t, d); st.NextAttempt.Sub(st.LastAttempt) != 500*time.Millisecond {
		t.Errorf("till D's loop waits %v after being shed, want its backoff_max (500ms)", st.NextAttempt.Sub(st.LastAttempt))
	}
	if n := hoMetric(t, h, "headoffice_till_requests_shed_total"); n < 3 {
		t.Errorf("%v requests shed, want at least 3", n)
	}

	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cDone; err != nil {
		t.Fatalf("till C's push once its row was free: %v", err)
	}
	for _, tl := range []*till{a, d} {
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatalf("till %s's sync now after head office freed: %v", tl.id, err)
		}
	}
	for _, tl := range []*till{a, c, d} {
		if n, err := tl.st.PendingCount(ctx); err != nil || n != 0 {
			t.Errorf("till %s: %d entries pending (%v), want none", tl.id, n, err)
		}
	}
}
