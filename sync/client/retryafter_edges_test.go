package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/internal/store"
)

// Edge cases of the till's side of head office shedding: what the sync loop waits
// after a 503 or a 429, against a real HTTP server standing in for head
// office or a proxy before it.

// edgeBusy is a server that answers every till request with status and the
// headers set by hdr, counting the requests and when they came.
type edgeBusy struct {
	hs  *httptest.Server
	mu  sync.Mutex
	at  []time.Time
	req []string // method and path
}

func newEdgeBusy(t *testing.T, status int, hdr func(http.Header), body string) *edgeBusy {
	t.Helper()
	b := &edgeBusy{}
	b.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.at = append(b.at, time.Now())
		b.req = append(b.req, r.Method+" "+r.URL.Path)
		b.mu.Unlock()
		if hdr != nil {
			hdr(w.Header())
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(b.hs.Close)
	return b
}

func (b *edgeBusy) reqs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.req...)
}

func (b *edgeBusy) times() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.at...)
}

// edgeClient is a client of till S001-T01 against url with a pinned clock
// (so that Status' NextAttempt − LastAttempt is the loop's wait exactly)
// and o adjusting its options.
func edgeClient(t *testing.T, url string, st *store.Store, clock *atomic.Int64, o func(*Options)) *Client {
	t.Helper()
	opt := Options{URL: url, TillID: "S001-T01", StoreID: "S001", Secret: "till-secret-for-tests-0123456789", Store: st,
		Interval: time.Minute, BackoffMin: 10 * time.Millisecond, BackoffMax: time.Minute, RequestTimeout: 5 * time.Second,
		Clock: func() time.Time { return time.Unix(0, clock.Load()) }}
	if o != nil {
		o(&opt)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// edgeRun runs c's loop until the test ends.
func edgeRun(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// edgeWaitNext waits (up to 5 s) for the loop to settle on a next attempt
// after a failed cycle and returns how long it waits.
func edgeWaitNext(t *testing.T, c *Client) (time.Duration, Status) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if st := c.Status(); st.State == "failing" && !st.NextAttempt.IsZero() {
			return st.NextAttempt.Sub(st.LastAttempt), st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed cycle with a next attempt: %+v", c.Status())
		}
	}
}

func edgeClock() *atomic.Int64 {
	var c atomic.Int64
	c.Store(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).UnixNano())
	return &c
}

// TestProxy429OnPush: a proxy before head office answers the till's push
// 429 Too Many Requests in plain text with Retry-After: 1. Sync now says
// overloaded, with the Retry-After, the status and that it was not head
// office's JSON; the sale stays pending; the till counts as not reaching
// head office (so a sale's kick does not go at it again). The loop waits
// the Retry-After (1 s, not its 5-10 ms backoff): its next push comes at
// least a second after, and none in between.
func TestProxy429OnPush(t *testing.T) {
	ctx := context.Background()
	st := tillStore(t)
	if _, err := st.Append(ctx, []store.Entry{accrual5("")}); err != nil {
		t.Fatal(err)
	}
	b := newEdgeBusy(t, http.StatusTooManyRequests, func(h http.Header) { h.Set("Retry-After", "1") }, "Too Many Requests\n")
	c := edgeClient(t, b.hs.URL, st, edgeClock(), nil)
	err := c.SyncNow(ctx)
	var ae *AnswerError
	if FailureKind(err) != FailOverloaded || !errors.As(err, &ae) || ae.Status != 429 || ae.RetryAfter != time.Second || !ae.Plain {
		t.Fatalf("sync now against a proxy's 429: %v (kind %s, %+v), want overloaded, Retry-After 1 s, plain", err, FailureKind(err), ae)
	}
	if got := b.reqs(); len(got) != 1 || got[0] != "POST /v1/till/journal" {
		t.Fatalf("requests %q, want the one push (no pull after a failed push)", got)
	}
	if n, err := st.PendingCount(ctx); err != nil || n != 1 {
		t.Fatalf("pending %d (%v), want the sale still pending", n, err)
	}
	if !c.Status().Unreachable() {
		t.Fatal("after a 429 the till counts as reaching head office: a sale's kick would go at it again at once")
	}

	edgeRun(t, c)
	for deadline := time.Now().Add(5 * time.Second); len(b.times()) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in 5 s, want the loop's first and its retry", len(b.times()))
		}
	}
	at := b.times()
	if gap := at[2].Sub(at[1]); gap < time.Second {
		t.Fatalf("the loop pushed again %v after the 429, want at least its Retry-After (1 s)", gap)
	}
	if wait, _ := edgeWaitNext(t, c); wait != time.Second {
		t.Fatalf("the loop waits %v, want the Retry-After (1s)", wait)
	}
}

// TestRetryAfterHTTPDate: a 503 whose Retry-After is an HTTP date is
// taken against the answer's own Date, not the till's clock: a Date in
// 2001 and a Retry-After three seconds later make a 3 s wait. With the
// Date header dropped it is taken against the till's clock (an hour
// ahead: an hour), and BackoffMax (2 s) caps the loop's wait.
func TestRetryAfterHTTPDate(t *testing.T) {
	date := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newEdgeBusy(t, 503, func(h http.Header) {
		h.Set("Date", date.Format(http.TimeFormat))
		h.Set("Retry-After", date.Add(3*time.Second).Format(http.TimeFormat))
	}, `{"error": "busy"}`)
	c := edgeClient(t, b.hs.URL, tillStore(t), edgeClock(), nil)
	err := c.SyncNow(context.Background())
	var ae *AnswerError
	if FailureKind(err) != FailOverloaded || !errors.As(err, &ae) || ae.RetryAfter != 3*time.Second {
		t.Fatalf("503 with an HTTP-date Retry-After: %v (kind %s), want overloaded with 3 s", err, FailureKind(err))
	}
	edgeRun(t, c)
	if wait, _ := edgeWaitNext(t, c); wait != 3*time.Second {
		t.Fatalf("the loop waits %v, want 3s", wait)
	}

	noDate := newEdgeBusy(t, 503, func(h http.Header) {
		h["Date"] = nil // net/http sends none
		h.Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	}, `{"error": "busy"}`)
	c2 := edgeClient(t, noDate.hs.URL, tillStore(t), edgeClock(), func(o *Options) { o.BackoffMax = 2 * time.Second })
	err = c2.SyncNow(context.Background())
	if !errors.As(err, &ae) || ae.RetryAfter < 58*time.Minute || ae.RetryAfter > time.Hour {
		t.Fatalf("HTTP-date Retry-After without Date: %v, want about an hour", err)
	}
	edgeRun(t, c2)
	if wait, _ := edgeWaitNext(t, c2); wait != 2*time.Second {
		t.Fatalf("the loop waits %v after an hour's Retry-After, want its BackoffMax (2s)", wait)
	}
}

// Test503WithoutRetryAfter: a 503 that does not say when to come back
// (none, 0, a date in the past, text) is head office failing, not
// overloaded, and the loop keeps its own backoff: after the second
// failure half to all of twice BackoffMin (100 ms).
func Test503WithoutRetryAfter(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	for _, ra := range []string{"", "0", past, "soon"} {
		b := newEdgeBusy(t, 503, func(h http.Header) {
			if ra != "" {
				h.Set("Retry-After", ra)
			}
		}, `{"error": "database unavailable"}`)
		c := edgeClient(t, b.hs.URL, tillStore(t), edgeClock(), func(o *Options) { o.BackoffMin = 100 * time.Millisecond })
		if err := c.SyncNow(context.Background()); FailureKind(err) != FailHeadOffice {
			t.Fatalf("503, Retry-After %q: %v (kind %s), want head_office", ra, err, FailureKind(err))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		wait, st := edgeWaitNext(t, c)
		cancel()
		<-done
		// Two failures (sync now's, the loop's first): 100 ms doubled once.
		if st.Failures != 2 || wait < 100*time.Millisecond || wait > 200*time.Millisecond {
			t.Fatalf("503, Retry-After %q: %d failures, the loop waits %v, want 2 and its backoff (100-200ms)", ra, st.Failures, wait)
		}
	}
}

// TestRetryAfterCappedByBackoffMax: head office asks for an hour; the
// till's sync.backoff_max (300 ms) still holds: the loop's next attempt
// is 300 ms after, and it comes (not an hour later).
func TestRetryAfterCappedByBackoffMax(t *testing.T) {
	b := newEdgeBusy(t, 503, func(h http.Header) { h.Set("Retry-After", "3600") }, `{"error": "head office is busy"}`)
	c := edgeClient(t, b.hs.URL, tillStore(t), edgeClock(), func(o *Options) { o.BackoffMax = 300 * time.Millisecond })
	edgeRun(t, c)
	if wait, _ := edgeWaitNext(t, c); wait != 300*time.Millisecond {
		t.Fatalf("the loop waits %v after Retry-After 3600, want its BackoffMax (300ms)", wait)
	}
	for deadline := time.Now().Add(3 * time.Second); len(b.times()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no retry within 3 s: the loop waited out Retry-After past BackoffMax")
		}
	}
	if at := b.times(); at[1].Sub(at[0]) < 300*time.Millisecond {
		t.Fatalf("retried after %v, want at least 300ms", at[1].Sub(at[0]))
	}
}

// TestSyncNowWhileShedSetsTheLoopsWait: the loop is waiting out a
// Retry-After when a technician's sync now is shed again: the loop then
// waits the Retry-After from that cycle (its clock an hour on), not its
// short backoff.
func TestSyncNowWhileShedSetsTheLoopsWait(t *testing.T) {
	b := newEdgeBusy(t, 503, func(h http.Header) { h.Set("Retry-After", "4") }, `{"error": "head office is busy"}`)
	clock := edgeClock()
	c := edgeClient(t, b.hs.URL, tillStore(t), clock, nil)
	edgeRun(t, c)
	if wait, _ := edgeWaitNext(t, c); wait != 4*time.Second {
		t.Fatalf("the loop waits %v, want 4s", wait)
	}
	clock.Add(int64(time.Hour))
	later := time.Unix(0, clock.Load())
	if err := c.SyncNow(context.Background()); FailureKind(err) != FailOverloaded {
		t.Fatalf("sync now: %v, want overloaded", err)
	}
	for deadline := time.Now().Add(5 * time.Second); !c.Status().NextAttempt.Equal(later.Add(4 * time.Second)); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("next attempt %v, want the sync now's cycle (%v) + 4 s", c.Status().NextAttempt, later)
		}
	}
}

// TestRetryAfterHugeDelaySeconds: a Retry-After of more delay-seconds
// than int64 holds is still delay-seconds (RFC 9110: 1*DIGIT) asking for
// a long wait: it reads as the most taken (a day), as 999999999999 does,
// and the answer is overloaded. (Today it reads as no Retry-After.)
func TestRetryAfterHugeDelaySeconds(t *testing.T) {
	for _, v := range []string{"99999999999999999999", "9223372036854775808"} {
		if got := retryAfter(http.Header{"Retry-After": {v}}); got != 24*time.Hour {
			t.Errorf("Retry-After %s: %v, want 24h (the most taken)", v, got)
		}
	}
	b := newEdgeBusy(t, 503, func(h http.Header) { h.Set("Retry-After", "99999999999999999999") }, `{"error": "busy"}`)
	c := edgeClient(t, b.hs.URL, tillStore(t), edgeClock(), nil)
	if err := c.SyncNow(context.Background()); FailureKind(err) != FailOverloaded {
		t.Errorf("503 with Retry-After 99999999999999999999: kind %s (%v), want overloaded", FailureKind(err), err)
	}
	if r := b.reqs(); len(r) != 1 || !strings.Contains(r[0], "/v1/till/feed") {
		t.Errorf("asked %q, want the feed", r)
	}
}
