package headoffice

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// admission bounds the till requests (pushes and feed pages) head office
// works on at once. Without it a thousand tills coming back together
// after an outage all wait for a pool connection in arrival order: the
// ones served are those that have waited longest, so many reach the
// till's request timeout while their batch is being applied, the work is
// rolled back and sent again (BenchmarkHerd, 2,000 tills: a thousand
// pushes timed out, a fifth less applied a second). With it, a request waits at most queueWait for a
// place, then is told 503 with Retry-After, which the till's sync loop
// waits out; the requests admitted finish well within their timeout.
type admission struct {
	slots      chan struct{} // nil: no bound
	queueWait  time.Duration
	retryAfter time.Duration
	waiting    atomic.Int64
	shed       atomic.Int64
	// loggedAt and loggedShed: when the last "shedding" line was logged
	// (Unix ns) and the shed count then, so that a herd logs a line every
	// few seconds, not one a request.
	loggedAt, loggedShed atomic.Int64
}

// Defaults of Options.TillQueueWait and Options.BusyRetryAfter.
const (
	defaultTillQueueWait  = 10 * time.Second
	defaultBusyRetryAfter = 15 * time.Second
)

func newAdmission(o Options, poolConns int32) *admission {
	a := &admission{queueWait: o.TillQueueWait, retryAfter: o.BusyRetryAfter}
	if a.queueWait <= 0 {
		a.queueWait = defaultTillQueueWait
	}
	if a.retryAfter <= 0 {
		a.retryAfter = defaultBusyRetryAfter
	}
	n := o.MaxTillRequests
	if n == 0 {
		// Each request holds a connection for most of its time; twice the
		// pool keeps every connection busy while the next requests are
		// read and decoded.
		n = 2 * int(poolConns)
	}
	if n > 0 {
		a.slots = make(chan struct{}, n)
	}
	return a
}

// enter takes a place for a till request, waiting up to the queue wait,
// and returns the function that gives it back. When none frees in time it
// answers 503 with Retry-After; when the client went away while it
// waited it drops the request; either way !ok. Server.till calls it
// between the identity check, which needs no database, and
// authentication, which does: a request that cannot be any till's never
// queues, and the herd's authentication lookups, checked before the queue
// instead, made a cashier's card fetch wait twice as long (docs/sync.md).
func (s *Server) enter(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	a := s.admission
	if a.slots == nil {
		return func() {}, true
	}
	preRead(r)
	select {
	case a.slots <- struct{}{}:
	default:
		placed, shed := a.wait(r.Context())
		if shed {
			s.shed(w, r)
		}
		if !placed {
			return nil, false
		}
	}
	return func() { <-a.slots }, true
}

// wait waits up to the queue wait for a place: placed, or shed when none
// freed in time (neither when ctx ended first).
func (a *admission) wait(ctx context.Context) (placed, shed bool) {
	a.waiting.Add(1)
	defer a.waiting.Add(-1)
	t := time.NewTimer(a.queueWait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return true, false
	case <-t.C:
		return false, true
	case <-ctx.Done():
		return false, false
	}
}

// preReadMax is the most of a body read before its request waits: a
// push of 500 entries is about 300 KB as JSON, a tenth of that in gzip.
const preReadMax = 1 << 20

// preRead reads the body (up to preReadMax) before the request waits for
// a place. net/http notices a client gone (and cancels the request's
// context) only once the body has been read, so a till that gives up
// while its push waits would otherwise keep its place in the queue; and a
// push on a slow link holds no place while it uploads. The handler reads
// the same bytes, then whatever is left, or the error reading met.
func preRead(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, preReadMax))
	rest := r.Body
	if err != nil {
		rest = io.NopCloser(errReader{err})
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rest), r.Body}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// shed answers a till request head office has no place for. Retry-After
// is spread over half to one and a half times BusyRetryAfter, so that the
// tills shed together do not come back together.
func (s *Server) shed(w http.ResponseWriter, r *http.Request) {
	a := s.admission
	n := a.shed.Add(1)
	wait := a.retryAfter/2 + rand.N(a.retryAfter+1)
	secs := max(1, int((wait+time.Second-1)/time.Second)) // whole seconds, rounded up
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	httpError(w, http.StatusServiceUnavailable, fmt.Sprintf(
		"head office is busy: it works on %d till requests at once, %d more are waiting, and no place freed within %s: send again in %d s (Retry-After)",
		cap(a.slots), a.waiting.Load(), a.queueWait, secs))
	now := time.Now().UnixNano()
	if last := a.loggedAt.Load(); now-last >= int64(10*time.Second) && a.loggedAt.CompareAndSwap(last, now) {
		s.log.Warn("till requests shed: head office is at its limit (-max-till-requests)",
			"shed", n-a.loggedShed.Swap(n), "limit", cap(a.slots), "waiting", a.waiting.Load(),
			"queue_wait", a.queueWait, "route", r.Pattern)
	}
}
