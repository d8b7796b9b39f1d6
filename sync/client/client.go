// Package client is the till side of sync: a background loop that pushes
// the unacknowledged journal to head office in batches, pulls the replica
// feed since its cursor and imports it, and backs off (with a cap) while
// head office is unreachable. It never holds the store across a network
// call, so a sale is never blocked by sync.
package client

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Keys of the client's sync_state: the feed cursor, and a paged delta or
// first load in progress (so an interrupted one goes on where it stopped,
// and status after a restart shows how far it got).
const (
	cursorKey = "feed_cursor"
	deltaKey  = "feed_delta"
	loadKey   = "feed_first_load"
)

// Options configure New. URL, TillID, Store and Secret (or CertAuth) are
// required.
type Options struct {
	// URL of head office, e.g. https://ho.example.ru (config sync.url).
	URL     string
	TillID  string // config till.till_id
	StoreID string // config till.store_id
	Secret  string // issued at enrolment (config sync.secret)
	// CertAuth: HTTPClient presents the till's certificate (mutual TLS,
	// HTTPClient with TLSFiles.Cert), which head office takes instead of
	// the secret; Secret may then be empty.
	CertAuth bool
	// Agent is sent as the User-Agent ("tillagent/1.4.0"): head office's
	// tills report shows which build each till runs. "" means "tillagent".
	Agent string
	Store *store.Store
	// HTTPClient defaults to one with no overall timeout (RequestTimeout
	// bounds each request).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// BatchSize is the most entries per push; 0 means 500.
	BatchSize int
	// Interval between cycles when all is well; 0 means 30s.
	Interval time.Duration
	// BackoffMin and BackoffMax bound the wait after failures: it doubles
	// from min up to max (defaults 1s, 5m), with jitter.
	BackoffMin, BackoffMax time.Duration
	// SnapshotPage is the cards per page of the first load; 0 means 5000
	// (config sync.page_size).
	SnapshotPage int
	// DeltaPage is the most change rows per page of a delta (each changed
	// card comes whole with its lots, so a page carries more records); 0
	// means 5000 (a mass ERP import arrives in pages, each imported in its
	// own transaction; config sync.page_size).
	DeltaPage int
	// MinPage is the floor a feed page is halved to: a page whose answer
	// started but did not arrive whole within RequestTimeout (a slow link)
	// is asked again at half the size, down to MinPage; 0 means 100. A
	// request that got no answer at all is not a slow link and halves
	// nothing. A full page that arrives within a quarter of RequestTimeout
	// doubles the size again, up to the configured one. One size serves
	// the first load and the deltas (the same link), in memory only: a
	// restart starts again at the configured size.
	MinPage int
	// RequestTimeout bounds each HTTP request; 0 means 60s.
	RequestTimeout time.Duration
	// RefusedRetryMin and RefusedRetryMax bound how long a journal entry
	// head office refused (conflict, rejected) waits before it is sent
	// again: min after the first refusal, doubling with each refusal in a
	// row up to max. Defaults: 2×Interval (the next cycle does not re-send
	// it) and 1h. SyncNow sends refused entries at once.
	RefusedRetryMin, RefusedRetryMax time.Duration
	// FetchProbe: while head office did not answer the last cycle, a card
	// the replica lacks is asked for (FetchCard) only if nothing has tried
	// head office for this long, a cycle or another fetch: a dead link
	// costs a cashier at most one wait a FetchProbe, and a head office back
	// before the loop's back-off has run out serves cards at once. 0 means
	// 30s.
	FetchProbe time.Duration
	// LostRetry is how often the cards the till holds that head office no
	// longer knew after its restore are asked for again (until ERP has
	// sent them again); 0 means 10m.
	LostRetry time.Duration

	// ReloadSecret, if set, is asked for the secret again when head office
	// answers 401: a technician who enrolled the till again and wrote the
	// new secret (sync.secret_file) sees it work at the next request, with
	// no restart. The request is sent once more if it changed.
	ReloadSecret func() (string, error)

	// Clock stamps the times Status shows (tests pin it); the waits run
	// on real time.
	Clock func() time.Time
}

// Status is what /v1/status and `tillctl sync status` show.
type Status struct {
	// State is "idle" (not run yet), "ok" (last cycle succeeded) or
	// "failing" (head office unreachable or refusing; see LastError).
	State       string    `json:"state"`
	LastPush    time.Time `json:"last_push,omitzero"`    // last push that went through: batches taken, or none to send in a cycle that reached head office
	LastPull    time.Time `json:"last_pull,omitzero"`    // last successful feed import
	LastAttempt time.Time `json:"last_attempt,omitzero"` // last cycle started
	// LastError is the error of the failing cycles, set while State is
	// "failing"; a cycle that succeeds moves it to PreviousError, so an
	// old error is never shown as the state.
	LastError       string    `json:"last_error,omitempty"`
	LastErrorAt     time.Time `json:"last_error_at,omitzero"`
	PreviousError   string    `json:"previous_error,omitempty"`
	PreviousErrorAt time.Time `json:"previous_error_at,omitzero"`
	Failures        int       `json:"consecutive_failures"`
	// Running is true while a cycle runs; NextAttempt is when Run starts
	// the next one (unset while one runs, and without Run).
	Running      bool      `json:"cycle_running,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	Backlog      int       `json:"backlog"` // unacknowledged journal entries
	Pushed       int64     `json:"pushed"`  // entries acknowledged since start
	Cursor       string    `json:"cursor"`  // feed cursor (the saved one, read at each cycle's start)
	Folded       string    `json:"folded_through,omitempty"`
	ImportedRecs int64     `json:"imported_records"` // replica records imported since start
	// ReplicaLoaded is true once a first load from head office has
	// finished (the store holds a feed cursor); false before, and while the
	// replica is loaded again after a feed reset. It is read from the store
	// at each cycle's start.
	ReplicaLoaded bool `json:"replica_loaded"`
	// Loading is true during the first load; LoadedCards counts its
	// progress (the cards head office sent in its pages so far). It is
	// saved with the load's position, so after an interrupted load (a cut
	// link, a restart) it still shows the cards the till holds and sells
	// on, and the next cycle goes on from there. Head office gives no
	// total, so none is shown.
	Loading     bool  `json:"initial_load,omitempty"`
	LoadedCards int64 `json:"initial_load_cards,omitempty"`
	// PageSize is the page size the feed is asked with now, first load
	// and deltas alike: the configured one, or smaller after pages came too
	// slowly (Options.MinPage), growing back after quick ones.
	PageSize int `json:"page_size,omitempty"`
	// DeltaLoading is true while a paged delta is being imported;
	// DeltaPages and DeltaRecords count the pages and records of the
	// current (or last) delta, the pages imported before a restart
	// included.
	DeltaLoading bool  `json:"delta_in_progress,omitempty"`
	DeltaPages   int   `json:"delta_pages,omitempty"`
	DeltaRecords int64 `json:"delta_records,omitempty"`
	// Rejected are the feed records the till could not take (bad values,
	// unknown references): left out, the rest imported, tried again at
	// every pull until head office sends them right. Status shows the
	// first maxShownRejected; RejectedCount is how many there are.
	Rejected      []store.RejectedRecord `json:"rejected,omitempty"`
	RejectedCount int                    `json:"rejected_count,omitempty"`
	// Resets counts the feed resets head office asked for since start.
	Resets int `json:"feed_resets,omitempty"`
	// Repushing is true while the till pushes its journal again after
	// RepushAfter, head office's watermark when it lost the rest (a
	// restore from a backup: after a feed reset, or a feed whose watermark
	// went back); Repushes counts how often that began since start.
	Repushing   bool   `json:"repushing,omitempty"`
	RepushAfter string `json:"repush_after,omitempty"`
	Repushes    int    `json:"repushes,omitempty"`
	// Refused are the journal entries head office refused and the till
	// still holds ("id status: error", in journal order, the first
	// maxShownRejected; RefusedCount is how many): kept unacknowledged,
	// sent again after a back-off (Options.RefusedRetryMin/Max) or on
	// SyncNow, while the rest of the journal is pushed and the feed pulled.
	// RefusedRetryAt is when the first of them is due to be sent again.
	Refused        []string  `json:"refused_entries,omitempty"`
	RefusedCount   int       `json:"refused_entries_count,omitempty"`
	RefusedRetryAt time.Time `json:"refused_retry_at,omitzero"`
	// CardsFetched counts the cards head office sent since start when
	// asked for them: cards the replica lacked (FetchCard), and those
	// asked for again after head office was restored.
	CardsFetched int `json:"cards_fetched,omitempty"`
	// RefetchError is why asking head office again for the cards held,
	// after it was restored, failed at the last cycle (the next goes on).
	RefetchError string `json:"refetch_error,omitempty"`
	// unreached: the last cycle got no feed (Unreachable).
	unreached bool
}

// maxShownRejected bounds the rejected records Status lists (a whole
// section refused by a version skew must not bloat /v1/status).
const maxShownRejected = 50

// Client is the till's sync loop.
type Client struct {
	o    Options
	base *url.URL
	log  *slog.Logger

	// kick carries SyncNow's result to Run, which then waits anew from it.
	kick chan error
	// page is the feed page size asked now (halved after a page came too
	// slowly, doubled after a quick one), for the first load and deltas;
	// maxPage is the larger configured size, what it grows back to.
	page    atomic.Int64
	maxPage int64
	// slowAt is the smallest page size that came too slowly (0: none
	// since one arrived whole at that size); quickRun counts the quick
	// full pages in a row. Growing to slowAt again takes quickRun ≥
	// regrowAfter, so a link at the edge costs at most one timeout in
	// regrowAfter+1 pages. Only the fetch running changes them.
	slowAt, quickRun atomic.Int64
	// gzipBodies: head office's last answer said it takes gzip request
	// bodies (Accept-Encoding, RFC 7694); pushes are compressed then.
	gzipBodies atomic.Bool
	// tried is when a cycle or a card fetch last went to head office
	// (real time, Unix ns): Options.FetchProbe counts from it.
	tried atomic.Int64
	// lostTried is when refetchLost last asked (real time, Unix ns).
	lostTried atomic.Int64

	// cycleMu is held by the one cycle running (Run's or SyncNow's), or by
	// FetchCard importing its answer: a one-place semaphore, so that
	// waiting for it can end with a ctx (lockCycle).
	cycleMu chan struct{}
	mu      sync.Mutex
	// flight is the cycle running (nil: none), under mu: SyncNow waits for
	// it and takes its outcome if it failed.
	flight *flight
	// loop is Run's context while Run runs (nil otherwise), under mu: the
	// cycles SyncNow and Kick start run on it, counted in detached (added
	// under mu), which Run waits for before it returns: the agent closes
	// the store once Run is done.
	loop     context.Context
	detached sync.WaitGroup
	st       Status
	// rejectedLoaded: st.Rejected has been read from the store once.
	rejectedLoaded bool
	// refused are the journal entries head office refused, by id (under
	// cycleMu).
	refused map[string]*refusal
}

// New checks the options; nothing is contacted until Run or SyncNow.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sync client: url %q: want http(s)://host[:port]", o.URL)
	}
	switch {
	case o.TillID == "":
		return nil, errors.New("sync client: empty till id")
	case o.Secret == "" && !o.CertAuth:
		return nil, fmt.Errorf("sync client for till %s: empty secret and no till certificate", o.TillID)
	case o.Store == nil:
		return nil, fmt.Errorf("sync client for till %s: no store", o.TillID)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchSize > wire.MaxBatch {
		o.BatchSize = wire.MaxBatch
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(5*time.Minute, o.BackoffMin)
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.SnapshotPage <= 0 {
		o.SnapshotPage = 5000
	}
	if o.DeltaPage <= 0 {
		o.DeltaPage = 5000
	}
	if o.MinPage <= 0 {
		o.MinPage = 100
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RefusedRetryMin <= 0 {
		o.RefusedRetryMin = 2 * o.Interval
	}
	if o.RefusedRetryMax < o.RefusedRetryMin {
		o.RefusedRetryMax = max(time.Hour, o.RefusedRetryMin)
	}
	if o.FetchProbe <= 0 {
		o.FetchProbe = 30 * time.Second
	}
	if o.LostRetry <= 0 {
		o.LostRetry = 10 * time.Minute
	}
	c := &Client{o: o, base: u, log: o.Logger.With("component", "sync"), kick: make(chan error, 1), cycleMu: make(chan struct{}, 1),
		st: Status{State: "idle", PageSize: max(o.SnapshotPage, o.DeltaPage)}, refused: map[string]*refusal{}}
	c.maxPage = int64(max(o.SnapshotPage, o.DeltaPage))
	c.page.Store(c.maxPage)
	return c, nil
}

// Run syncs until ctx ends: a cycle every Interval, sooner after SyncNow,
// later (doubling up to BackoffMax) while cycles fail. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	c.loop = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.loop = nil
		c.mu.Unlock()
		c.detached.Wait()
	}()
	select {
	case <-c.kick: // a SyncNow's before the loop started: its own cycle comes now
	default:
	}
	err := c.cycle(ctx, false)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := c.o.Interval
		if ref, refused := err.(*refusedError); refused {
			// Head office answered and the feed came in; only entries
			// were refused, which a sooner retry does not change. Entries
			// held back (not sent this cycle) were logged when refused.
			lvl := slog.LevelDebug
			if ref.fresh > 0 {
				lvl = slog.LevelWarn
			}
			c.log.Log(ctx, lvl, "sync: head office refused journal entries", "err", err)
		} else if err != nil {
			wait = c.backoff()
			if ae := (*AnswerError)(nil); errors.As(err, &ae) && overloaded(ae) {
				// Sooner would only be shed again; BackoffMax, the till's
				// own bound, still holds.
				wait = min(max(wait, ae.RetryAfter), c.o.BackoffMax)
			}
			c.log.Warn("sync failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		c.mu.Lock()
		c.st.NextAttempt = c.o.Clock().Add(wait)
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			err = c.cycle(ctx, false)
		case err = <-c.kick:
			// SyncNow just ran a cycle: wait from its outcome (the
			// interval, or the backoff after a failure), not run another.
			t.Stop()
		}
	}
}

// backoff is min·2^(failures−1) capped at max, then a random point in its
// upper half, so a thousand tills coming back together spread out.
func (c *Client) backoff() time.Duration {
	c.mu.Lock()
	n := c.st.Failures
	c.mu.Unlock()
	d := c.o.BackoffMin
	for i := 1; i < n && d < c.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.o.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// SyncNow runs one cycle now (push everything pending, refused entries
// too whatever their back-off, then pull the feed) and returns its error; a
// running Run loop then starts its wait anew from this cycle's outcome
// (the interval, or the backoff after a failure) without running a cycle
// of its own. It is how a technician who fixed head office sees the result
// at once.
//
// If a cycle is running already, SyncNow waits for it first; if that one
// failed other than by refused entries (head office unreachable or
// failing just now), SyncNow returns its error instead of going at head
// office again at once. If the wait outlasts ctx the error is a
// *BusyError.
//
// While Run runs, the cycle is the loop's: it runs on Run's context, not
// on ctx, and if ctx ends first (a technician giving up, a kick's
// deadline) SyncNow returns a *BusyError and the cycle goes on. Cut off
// with its caller, a long cycle that was going well (a paged delta after a
// mass import) failed, and the loop backed off from a head office that
// was fine. Without Run the cycle runs on ctx.
func (c *Client) SyncNow(ctx context.Context) error { return c.now(ctx, true) }

// Kick is SyncNow for the agent after a sale that spent points (so head
// office folds them and the offline caps free at once), except that
// refused entries keep their back-off: a conflict is not sent again after
// every sale.
func (c *Client) Kick(ctx context.Context) error { return c.now(ctx, false) }

// now runs a cycle for SyncNow (force: refused entries too) or Kick.
func (c *Client) now(ctx context.Context, force bool) error {
	if err := c.waitFlight(ctx); err != nil {
		c.handToRun(err)
		return err
	}
	c.mu.Lock()
	loop := c.loop
	if loop != nil {
		c.detached.Add(1)
	}
	c.mu.Unlock()
	run := func(ctx context.Context) error {
		err := c.cycle(ctx, force)
		c.handToRun(err)
		return err
	}
	if loop == nil {
		return run(ctx)
	}
	done := make(chan error, 1)
	go func() {
		defer c.detached.Done()
		done <- run(loop)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return c.busy(ctx)
	}
}

// busy is giving up on the cycle running since the last attempt: ctx ended.
func (c *Client) busy(ctx context.Context) *BusyError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &BusyError{Since: c.st.LastAttempt, Err: ctx.Err()}
}

// handToRun gives a cycle's outcome to Run, which waits anew from it; a
// *BusyError is no outcome (no cycle of its own: Run's wait stands).
func (c *Client) handToRun(err error) {
	if _, busy := err.(*BusyError); busy {
		return
	}
	select {
	case <-c.kick: // an older result Run has not taken: this one replaces it
	default:
	}
	select {
	case c.kick <- err:
	default:
	}
}

// waitFlight waits for the cycle running, if any: its error if it failed
// other than by refused entries, a *BusyError if ctx ends first.
func (c *Client) waitFlight(ctx context.Context) error {
	c.mu.Lock()
	f := c.flight
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return &BusyError{Since: f.started, Err: ctx.Err()}
	}
	if f.err != nil && FailureKind(f.err) != FailRefused {
		return f.err
	}
	return nil
}

// flight is one cycle: when it started, and its error once done is closed.
type flight struct {
	started time.Time
	done    chan struct{}
	err     error
}

// BusyError is SyncNow giving up waiting for the cycle that was already
// running (on a slow link a cycle may take many request timeouts).
type BusyError struct {
	Since time.Time // the running cycle's start (Options.Clock)
	Err   error     // the caller's ctx's
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("sync now: the cycle running since %s has not ended: %v", e.Since.Format(time.TimeOnly), e.Err)
}

func (e *BusyError) Unwrap() error { return e.Err }

// Status returns a copy of the current status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.RejectedCount = len(c.st.Rejected)
	st.Rejected = append([]store.RejectedRecord(nil), c.st.Rejected[:min(len(c.st.Rejected), maxShownRejected)]...)
	return st
}

// notePush stamps the status's last successful push.
func (c *Client) notePush() {
	c.mu.Lock()
	c.st.LastPush = c.o.Clock()
	c.mu.Unlock()
}

// lockCycle takes the cycle lock, or gives up with a *BusyError when ctx
// ends first.
func (c *Client) lockCycle(ctx context.Context) error {
	select {
	case c.cycleMu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return c.busy(ctx)
	}
}

func (c *Client) unlockCycle() { <-c.cycleMu }

// cycle pushes, then pulls; force sends refused entries whose back-off has
// not passed.
func (c *Client) cycle(ctx context.Context, force bool) (err error) {
	if err := c.lockCycle(ctx); err != nil {
		return err
	}
	defer c.unlockCycle()
	c.tried.Store(time.Now().UnixNano())
	f := &flight{started: c.o.Clock(), done: make(chan struct{})}
	c.mu.Lock()
	c.flight = f
	c.st.LastAttempt = f.started
	c.st.Running, c.st.NextAttempt = true, time.Time{}
	loaded := c.rejectedLoaded
	c.mu.Unlock()
	defer func() {
		f.err = err
		c.mu.Lock()
		c.flight = nil
		c.mu.Unlock()
		close(f.done)
	}()
	defer func() {
		// A bug on either side (a feed value the import cannot hold) must
		// not take the till down with it: the cycle fails, and the loop
		// backs off and sells on.
		if p := recover(); p != nil {
			c.log.Error("sync cycle panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("sync cycle: internal error: %v", p)
		}
	}()
	c.showSaved(ctx)
	if !loaded {
		// Records refused before a restart are still held back: show them.
		if rej, err := c.o.Store.Rejected(ctx); err == nil {
			c.mu.Lock()
			c.st.Rejected, c.rejectedLoaded = rej, true
			c.mu.Unlock()
		}
	}
	err = c.push(ctx, force)
	var ref *refusedError
	pulled := false // the feed came in (entries refused or not)
	pushed := err == nil
	if err == nil || errors.As(err, &ref) {
		// Head office answered: entries it refused (a conflict, a rejected
		// entry) stay unacknowledged and shown, and must not keep the till
		// from its feed. Only a failed exchange skips the pull.
		perr := c.pull(ctx, force)
		refusedOnly := onlyRefused(perr)
		if pulled = perr == nil || refusedOnly; pulled {
			// After head office was restored, the cards the till holds
			// are asked for again.
			c.refetchShown(ctx)
		}
		if perr != nil {
			// A re-push's refusal is shown once, with the push's.
			if !refusedOnly || ref == nil {
				err = errors.Join(err, perr)
			}
		} else if ref != nil {
			// The pull's re-push may have gone past what the push refused
			// (acknowledged entries): the cycle says what is refused now.
			err = c.showRefused(ref.fresh)
		}
	}
	if pushed && pulled {
		// Nothing left to push counts as a push once head office is found
		// there, not before any request: a quiet till's last_push kept
		// moving with head office down.
		c.notePush()
	}
	backlog, berr := c.o.Store.PendingCount(ctx)
	after, repushing, rerr := c.o.Store.Repush(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Cut off by its own context (the agent stopping, or a caller without
	// the loop giving up), the cycle says nothing of head office: neither
	// a failure nor a reason to skip the next kick.
	cut := err != nil && ctx.Err() != nil
	c.st.Running = false
	if !cut {
		c.st.unreached = !pulled
	}
	if berr == nil {
		c.st.Backlog = backlog
	}
	if rerr == nil {
		c.st.Repushing, c.st.RepushAfter = repushing, after
	}
	if cut {
		return err
	}
	if err != nil {
		c.st.State, c.st.LastError, c.st.LastErrorAt = "failing", err.Error(), c.o.Clock()
		c.st.Failures++
		return err
	}
	if c.st.LastError != "" {
		// Recovered: the error is history, not the state.
		c.st.PreviousError, c.st.PreviousErrorAt = c.st.LastError, c.st.LastErrorAt
		c.st.LastError, c.st.LastErrorAt = "", time.Time{}
	}
	c.st.State, c.st.Failures = "ok", 0
	return nil
}

// showSaved puts what the store holds into Status, so that it is right
// from the first cycle after a restart: the cursor (none: no first load
// finished), a paged delta in progress with the pages imported so far, and
// the cards of a first load cut off.
func (c *Client) showSaved(ctx context.Context) {
	cur, err := c.o.Store.SyncState(ctx, cursorKey)
	if err != nil {
		return
	}
	raw, err := c.o.Store.SyncState(ctx, deltaKey)
	if err != nil {
		return
	}
	var ds deltaState
	inDelta := raw != "" && json.Unmarshal([]byte(raw), &ds) == nil && cur != "" && ds.Since == cur && ds.First != ""
	ls, inLoad, err := c.savedLoad(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Cursor, c.st.ReplicaLoaded = cur, cur != ""
	if inDelta {
		c.st.DeltaLoading, c.st.DeltaPages, c.st.DeltaRecords = true, ds.Pages, ds.Records
	}
	if cur == "" && inLoad {
		// A first load cut off, before a restart too: the cards it brought
		// are in the store and sell.
		c.st.LoadedCards = ls.Cards
	}
}

// push sends pending entries batch by batch until each has been sent once
// in this push. Entries head office refuses stay pending and do not hold
// back the ones after them; each is sent again once its back-off has passed
// (force: in this push, whatever its back-off). They are returned as a
// *refusedError once the push is done, and shown in Status. During a
// re-push (store.RepushAfter) the pending entries include acknowledged
// ones, and each acknowledgement moves the re-push position on.
func (c *Client) push(ctx context.Context, force bool) error {
	// Entries not sent in this push: the refused ones still backing off,
	// then every entry once sent in it.
	skip := c.heldRefusals(time.Now(), force)
	held := len(skip)
	fresh := 0     // entries refused in this push
	ackedHeld := 0 // acknowledged during a re-push while an entry is refused
	sent := false  // a batch went through
	for {
		// Skipped entries do not take the places of the ones after them:
		// the refused ones, and during a re-push the acknowledged ones
		// after a refused one (the re-push position stops at it), which
		// come back pending until the next cycle.
		_, repushing, err := c.o.Store.Repush(ctx)
		if err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		limit := c.o.BatchSize + held + fresh + ackedHeld
		pend, err := c.o.Store.PendingChain(ctx, limit)
		if err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		batch := pend[:0]
		for _, p := range pend {
			if !skip[p.ID] && len(batch) < c.o.BatchSize {
				batch = append(batch, p)
			}
		}
		if len(batch) == 0 && len(pend) < limit {
			// pend is every entry still to push: a refusal of one that is
			// not (acknowledged since: head office refused it during a
			// re-push, which then went past it) is no longer true.
			pending := make(map[string]bool, len(pend))
			for _, p := range pend {
				pending[p.ID] = true
			}
			for id := range c.refused {
				if !pending[id] {
					delete(c.refused, id)
				}
			}
		}
		if len(batch) == 0 {
			if sent {
				c.notePush()
			}
			return c.showRefused(fresh)
		}
		for _, p := range batch {
			skip[p.ID] = true
		}
		acked, refused, err := c.pushBatch(ctx, batch)
		if err != nil {
			return err
		}
		sent = true
		fresh += refused
		if repushing && held+fresh > 0 {
			// The re-push position stops at the first refused entry: the
			// acknowledged ones after it stay pending (sent again next cycle).
			ackedHeld += len(acked)
		}
		if err := c.o.Store.MarkAcked(ctx, acked); err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		if err := c.o.Store.AdvanceRepush(ctx, acked); err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		if repushing {
			// Status shows the position saved, not the one the re-push began at.
			if after, still, err := c.o.Store.Repush(ctx); err == nil {
				c.mu.Lock()
				c.st.Repushing, c.st.RepushAfter = still, after
				c.mu.Unlock()
			}
		}
	}
}

// pushBatch sends one batch and sorts head office's answers: the ids it
// acknowledged (applied, duplicate), and how many it refused (conflict,
// rejected, not answered: recorded with their back-off).
func (c *Client) pushBatch(ctx context.Context, pend []store.PendingEntry) (acked []string, refused int, err error) {
	b := wire.Batch{TillID: c.o.TillID, Entries: make([]wire.Entry, len(pend))}
	for i, p := range pend {
		b.Entries[i] = wire.Entry{Entry: p.Entry, Prev: p.Prev}
		b.Entries[i].Acked = false
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, 0, fmt.Errorf("sync push: %w", err)
	}
	data, err := c.do(ctx, http.MethodPost, pushPath, nil, body)
	if err != nil {
		return nil, 0, fmt.Errorf("sync push of %d entries: %w", len(pend), err)
	}
	res, err := wire.DecodeBatchResult(data)
	if err != nil {
		return nil, 0, fmt.Errorf("sync push: %w", err)
	}
	sent := make(map[string]bool, len(b.Entries))
	for _, e := range b.Entries {
		sent[e.ID] = true
	}
	answered := map[string]bool{}
	for _, r := range res.Results {
		switch {
		case !sent[r.ID]:
			return nil, 0, fmt.Errorf("sync push: head office answered for entry %s, which was not sent", r.ID)
		case answered[r.ID]:
			continue // answered twice: the first answer counts
		case r.Acked():
			acked = append(acked, r.ID)
			delete(c.refused, r.ID)
		default:
			c.refuse(r.ID, fmt.Sprintf("%s %s: %s", r.ID, r.Status, r.Error), time.Now())
			refused++
		}
		answered[r.ID] = true
	}
	for _, e := range b.Entries {
		if !answered[e.ID] {
			c.refuse(e.ID, e.ID+": not answered by head office", time.Now())
			refused++
		}
	}
	c.mu.Lock()
	c.st.Pushed += int64(len(acked))
	if res.FoldedThrough != "" {
		c.st.Folded = res.FoldedThrough
	}
	c.mu.Unlock()
	return acked, refused, nil
}

// deltaState is a paged delta in progress: asked since Since, the first
// page's cursor First (saved as the cursor once the last page is in), the
// change after which the next page starts, and the pages and records
// imported so far (for Status after a restart).
type deltaState struct {
	Since   string `json:"since"`
	First   string `json:"first"`
	After   string `json:"after"`
	Pages   int    `json:"pages,omitempty"`
	Records int64  `json:"records,omitempty"`
}

// pullOutcome is how one pass over the feed ended: imported (neither
// flag), reset by head office, or refused because head office's watermark
// for this till is behind the till's. Folded is head office's watermark
// in the last two cases ("" = none).
type pullOutcome struct {
	reset, back bool
	folded, had string
}

// pull imports the feed since the saved cursor page by page, then saves
// the new cursor. A crash between a page and the cursor imports the same
// changes again, which is a no-op; a crash in the middle of a delta goes on
// from the last page imported.
//
// Head office restored from a backup has lost the entries the till pushed
// after the backup: its watermark for the till is behind the till's. When
// it says so — a reset answer carries its watermark; a page whose watermark
// is behind the till's is not imported — the till pushes again every entry
// after that watermark, acknowledged or not (store.RepushAfter), before it
// imports anything more: head office folds them back, so the lots the till
// then imports include them and go with a watermark at or past the till's.
func (c *Client) pull(ctx context.Context, force bool) error {
	resets, backs := 0, 0
	var refused error // a re-push head office answered, refusing some entries
	for {
		out, err := c.pullOnce(ctx)
		if err != nil {
			return errors.Join(refused, err)
		}
		switch {
		case out.reset:
			if resets++; resets > 1 {
				return errors.New("sync pull: head office reset the feed twice in a row")
			}
			// Head office was restored or asked for a fresh start: push
			// what it may have lost, forget the cursor and load the whole
			// replica again (imports are upserts). The re-push position is
			// saved first: should the till stop before the push is done,
			// the next cycle's push goes on with it before any pull.
			c.log.Warn("head office reset the feed: pushing the journal after its watermark again, then loading the replica afresh",
				"folded_through", out.folded)
			if err := c.restored(ctx, out.folded); err != nil {
				return err
			}
			if err := c.o.Store.RepushAfter(ctx, out.folded); err != nil {
				return fmt.Errorf("sync pull: %w", err)
			}
			if err := c.o.Store.SetSyncState(ctx, refetchKey, `{"after":""}`); err != nil {
				return fmt.Errorf("sync pull: %w", err)
			}
			for _, k := range []string{cursorKey, deltaKey, loadKey} {
				if err := c.o.Store.SetSyncState(ctx, k, ""); err != nil {
					return fmt.Errorf("sync pull: %w", err)
				}
			}
			c.mu.Lock()
			c.st.Resets++
			c.mu.Unlock()
		case out.back:
			if backs++; backs > 1 {
				if err := c.lostError(ctx, out.folded); err != nil {
					return err
				}
				return fmt.Errorf("sync pull: head office's watermark for till %s is %q, still behind the till's %q after pushing the journal after it again",
					c.o.TillID, out.folded, out.had)
			}
			c.log.Warn("head office's watermark went back (restored from a backup?): pushing the journal after it again",
				"folded_through", out.folded, "till_folded_through", out.had)
			if err := c.restored(ctx, out.folded); err != nil {
				return err
			}
			if err := c.o.Store.RepushAfter(ctx, out.folded); err != nil {
				return fmt.Errorf("sync pull: %w", err)
			}
			if err := c.o.Store.SetSyncState(ctx, refetchKey, `{"after":""}`); err != nil {
				return fmt.Errorf("sync pull: %w", err)
			}
		default:
			return refused
		}
		c.mu.Lock()
		c.st.Repushes++
		c.st.Repushing, c.st.RepushAfter = true, out.folded
		c.mu.Unlock()
		if err := c.push(ctx, force); err != nil {
			var ref *refusedError
			if !errors.As(err, &ref) {
				return fmt.Errorf("sync pull: pushing the journal again after %q: %w", out.folded, err)
			}
			// Head office answered: what it refused stays unacknowledged
			// (the re-push position stops at it) and must not keep the
			// till from its feed, as in a cycle's own push. A page whose
			// watermark is still behind is not imported.
			refused = err
		}
	}
}

// restored is what a restore of head office, its watermark now folded,
// changes about the journal kept: every entry stays from now until head
// office's next delta says again which it holds (a restored head office
// names its own, from a past the till's saved mark may not be). And should
// the till have dropped entries after that watermark, head office was
// restored from a backup older than its -journal-hold promised: they are
// gone from both (store.JournalKept.Lost), which is said loudly.
func (c *Client) restored(ctx context.Context, folded string) error {
	if err := c.o.Store.SetJournalHeld(ctx, ""); err != nil {
		return fmt.Errorf("sync pull: %w", err)
	}
	through, err := c.droppedPast(ctx, folded)
	if err != nil || through == "" {
		return err
	}
	c.log.Error("head office was restored from a backup older than its -journal-hold: this till had dropped journal entries after head office's watermark, now lost from both; head office folds none of this till's entries after them until it has them back (headoffice retake-journal, from ERP's journal export)",
		"folded_through", folded, "dropped_through", through)
	if err := c.o.Store.SetJournalLost(ctx, folded, true); err != nil {
		return fmt.Errorf("sync pull: %w", err)
	}
	return nil
}

// droppedPast is the last journal entry this till dropped when it is past
// head office's watermark folded ("": none is).
func (c *Client) droppedPast(ctx context.Context, folded string) (string, error) {
	k, err := c.o.Store.JournalKept(ctx)
	if err != nil {
		return "", fmt.Errorf("sync pull: %w", err)
	}
	if k.PrunedThrough <= folded {
		return "", nil
	}
	return k.PrunedThrough, nil
}

// lostError is why a till whose entries head office lacks cannot take
// its feed, when the entries are ones it dropped (nil: they are not).
func (c *Client) lostError(ctx context.Context, folded string) error {
	through, err := c.droppedPast(ctx, folded)
	if err != nil || through == "" {
		return err
	}
	return fmt.Errorf("sync pull: head office's watermark for till %s is %q, behind journal entries this till dropped (through %s) once head office said its backups held them: restored from a backup older than its -journal-hold, head office lacks them; give them back there with headoffice retake-journal, from ERP's journal export",
		c.o.TillID, folded, through)
}

// lostFound clears the record of entries head office lost (SetJournalLost)
// once a pull has taken head office's watermark past them: restored there.
func (c *Client) lostFound(ctx context.Context) error {
	k, err := c.o.Store.JournalKept(ctx)
	if err != nil || !k.Lost {
		return err
	}
	wm, err := c.o.Store.FoldedThrough(ctx)
	if err != nil || wm < k.PrunedThrough {
		return err
	}
	c.log.Info("head office holds again the journal entries it had lost", "folded_through", wm, "dropped_through", k.PrunedThrough)
	return c.o.Store.SetJournalLost(ctx, "", false)
}

// behind reports whether the page f would take this till's watermark back
// (head office restored from a backup), and the two watermarks. A page
// without a watermark is behind only if absentIsNone (a delta page: head
// office sends its watermark whenever it has one).
func (c *Client) behind(ctx context.Context, f *wire.Feed, absentIsNone bool) (pullOutcome, error) {
	had, err := c.o.Store.FoldedThrough(ctx)
	if err != nil || had == "" {
		return pullOutcome{}, err
	}
	w, ok := "", false
	if f.Replica != nil {
		w, ok = f.Replica.FoldedThrough[c.o.TillID]
	}
	if (!ok && !absentIsNone) || w >= had {
		return pullOutcome{}, nil
	}
	// Only the till's own entries between the two watermarks would be
	// counted twice (in its lots and from its journal). A replaced store
	// holds none of the old one's, which head office lost for good: the
	// page describes exactly what it has, so it is taken.
	if own, err := c.o.Store.HasEntriesIn(ctx, w, had); err != nil || !own {
		if err == nil {
			c.log.Warn("head office's watermark is behind the till's, which names no entry of this store (replaced): taking it",
				"folded_through", w, "till_folded_through", had)
		}
		return pullOutcome{}, err
	}
	return pullOutcome{back: true, folded: w, had: had}, nil
}

func (c *Client) pullOnce(ctx context.Context) (pullOutcome, error) {
	cur, err := c.o.Store.SyncState(ctx, cursorKey)
	if err != nil {
		return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
	}
	if cur == "" {
		var out pullOutcome
		if cur, out, err = c.initialLoad(ctx); err != nil || out.back {
			return out, err
		}
	}
	ds := deltaState{Since: cur}
	if raw, err := c.o.Store.SyncState(ctx, deltaKey); err != nil {
		return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
	} else if raw != "" {
		var saved deltaState
		if json.Unmarshal([]byte(raw), &saved) == nil && saved.Since == cur && saved.First != "" {
			ds = saved
			c.log.Info("resuming a paged delta", "since", cur, "after_change", saved.After)
		}
	}
	c.mu.Lock()
	c.st.DeltaPages, c.st.DeltaRecords = ds.Pages, ds.Records
	c.st.DeltaLoading = ds.After != ""
	c.st.Cursor, c.st.ReplicaLoaded = cur, true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.st.DeltaLoading = false
		c.mu.Unlock()
	}()
	var last *wire.Feed
	var total store.ImportStats
	limitsSaved := false
	fetch := func(after string) fetched {
		return c.askPage(ctx, "delta", c.o.DeltaPage, url.Values{"cursor": {cur}}, after)
	}
	ahead := prefetch{log: c.log}
	defer ahead.wait()
	got := fetch(ds.After)
	for page := 1; ; page++ {
		f, err := got.f, got.err
		if err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull since %q, page %d: %w", cur, page, err)
		}
		if f.Reset {
			// Head office's watermark for this till comes with the reset:
			// what it holds of the journal after a restore.
			return pullOutcome{reset: true, folded: f.Replica.FoldedThrough[c.o.TillID]}, nil
		}
		if out, err := c.behind(ctx, f, true); err != nil || out.back {
			if err != nil {
				err = fmt.Errorf("sync pull since %q, page %d: %w", cur, page, err)
			}
			return out, err
		}
		if ds.First == "" {
			ds.First = f.Cursor
		}
		if page == 1 && f.More {
			c.mu.Lock()
			c.st.DeltaLoading = true
			c.mu.Unlock()
		}
		if f.More {
			ahead.start(func() fetched { return fetch(f.Next) })
		}
		st, err := c.importFeed(ctx, f, !f.More)
		if err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull since %q, page %d: %w", cur, page, err)
		}
		total = addStats(total, st)
		n := countStats(st)
		if err := c.saveLimits(ctx, f, &limitsSaved); err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull since %q, page %d: %w", cur, page, err)
		}
		ds.Pages++
		ds.Records += int64(n)
		c.mu.Lock()
		c.st.DeltaPages, c.st.DeltaRecords = ds.Pages, ds.Records
		c.st.ImportedRecs += int64(n)
		if w := f.Replica.FoldedThrough[c.o.TillID]; w != "" {
			c.st.Folded = w
		}
		c.mu.Unlock()
		last = f
		if !f.More {
			break
		}
		ds.After = f.Next
		b, _ := json.Marshal(ds)
		if err := c.o.Store.SetSyncState(ctx, deltaKey, string(b)); err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
		}
		c.log.Info("delta page imported", "since", cur, "page", page, "records", n)
		got = ahead.wait()
	}
	if err := c.o.Store.SetSyncState(ctx, cursorKey, ds.First); err != nil {
		return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
	}
	for _, k := range []string{deltaKey, loadKey} {
		if err := c.o.Store.SetSyncState(ctx, k, ""); err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
		}
	}
	if last.Offline != nil {
		if err := c.o.Store.SaveOfflineLimits(ctx, *last.Offline, c.o.Clock()); err != nil {
			return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
		}
	}
	// A delta saying nothing (an older head office, or one wanting every
	// entry kept) forgets what an earlier one let go.
	if err := c.o.Store.SetJournalHeld(ctx, last.JournalHeld); err != nil {
		return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
	}
	if err := c.lostFound(ctx); err != nil {
		return pullOutcome{}, fmt.Errorf("sync pull: %w", err)
	}
	if n := countStats(total); last.Full || n > 0 {
		c.log.Info("replica feed imported", "since", cur, "cursor", ds.First, "counts", total.String())
	}
	c.mu.Lock()
	c.st.LastPull, c.st.Cursor = c.o.Clock(), ds.First
	c.mu.Unlock()
	return pullOutcome{}, nil
}

// saveLimits saves the offline limits of page f if it carries them and
// none were saved yet in this pull (*saved): a pull cut off after its first
// page still leaves the till held to head office's caps. The last page's
// are saved again when the pull ends, with its time.
func (c *Client) saveLimits(ctx context.Context, f *wire.Feed, saved *bool) error {
	if *saved || f.Offline == nil {
		return nil
	}
	if err := c.o.Store.SaveOfflineLimits(ctx, *f.Offline, c.o.Clock()); err != nil {
		return err
	}
	*saved = true
	return nil
}

// getFeed asks GET /v1/till/feed with q and a page of the current size
// (at most configured, the size of this kind of feed; what names it in the
// log) and decodes the page.
//
// A page whose answer started (head office answered) but did not arrive
// whole within RequestTimeout is a slow link: it is asked again at half
// the size, down to MinPage, and the smaller size is kept for the pages
// after it; at the floor the timeout is the error. A request that got no
// answer at all (head office not answering, or not reached) is the error at
// once: a smaller page would not help. A full page (head office has more)
// that arrived within a quarter of RequestTimeout doubles the size, up to
// the configured one: a page twice as big should still take at most half
// the timeout. Back to a size that came too slowly it grows only after
// regrowAfter such pages in a row (a link at the edge, or slow spells).
func (c *Client) getFeed(ctx context.Context, what string, configured int, q url.Values) (*wire.Feed, error) {
	for {
		cur := c.page.Load()
		n := min(cur, int64(configured))
		q.Set("limit", strconv.FormatInt(n, 10))
		began := time.Now()
		data, err := c.do(ctx, http.MethodGet, "/v1/till/feed", q, nil)
		took := time.Since(began)
		if err == nil {
			f, err := wire.DecodeFeed(data)
			if s := c.slowAt.Load(); s > 0 && n >= s {
				c.slowAt.Store(0) // this size gets through now
			}
			quick := err == nil && f.More && took <= c.o.RequestTimeout/4
			run := int64(0)
			if quick {
				run = c.quickRun.Add(1)
			} else {
				c.quickRun.Store(0)
			}
			if quick && n == cur && cur < c.maxPage {
				grown := min(2*cur, c.maxPage)
				if s := c.slowAt.Load(); s > 0 && grown >= s && run < regrowAfter {
					return f, nil
				}
				if c.page.CompareAndSwap(cur, grown) {
					c.quickRun.Store(0)
					c.showPage(grown)
					c.log.Info("sync: a feed page arrived quickly: asking bigger pages",
						"feed", what, "page_size", cur, "next_page_size", grown, "took", took.Round(time.Millisecond),
						"request_timeout", c.o.RequestTimeout)
				}
			}
			return f, err
		}
		var te *TimeoutError
		if !errors.As(err, &te) || te.Stage != StageBody || n <= int64(c.o.MinPage) || ctx.Err() != nil {
			// A timeout of the caller's ctx (sync now's) ends here: the
			// page may have been cut short of RequestTimeout.
			return nil, err
		}
		c.quickRun.Store(0)
		if s := c.slowAt.Load(); s == 0 || n < s {
			c.slowAt.Store(n)
		}
		half := max(n/2, int64(c.o.MinPage))
		for {
			// Only ever smaller here: a page running at the same time
			// may have halved it already.
			if p := c.page.Load(); p <= half || c.page.CompareAndSwap(p, half) {
				break
			}
		}
		c.showPage(c.page.Load())
		c.log.Warn("sync: a feed page started to arrive but not whole within the request timeout (slow link?): asking smaller pages",
			"feed", what, "page_size", n, "next_page_size", half, "configured_page_size", configured,
			"request_timeout", c.o.RequestTimeout, "err", err)
	}
}

// regrowAfter is how many quick full pages in a row take the page size
// back to a size that came too slowly.
const regrowAfter = 8

// showPage puts the page size asked now into Status.
func (c *Client) showPage(n int64) {
	c.mu.Lock()
	c.st.PageSize = int(n)
	c.mu.Unlock()
}

// importFeed imports one page, leaving out (and reporting) the records
// that fail; retry tries the records left out before again (the last page
// of a pull: nothing newer of them can follow).
func (c *Client) importFeed(ctx context.Context, f *wire.Feed, retry bool) (store.ImportStats, error) {
	for _, u := range f.Undecoded {
		c.log.Error("feed record does not decode", "record", u.Key, "err", u.Error)
	}
	st, rejected, err := c.o.Store.ImportFeed(ctx, f.Replica, f.Undecoded, retry)
	if err != nil {
		return st, fmt.Errorf("import feed: %w", err)
	}
	c.mu.Lock()
	c.st.Rejected, c.rejectedLoaded = rejected, true
	c.mu.Unlock()
	return st, nil
}

func countStats(st store.ImportStats) int {
	return st.Stores + st.Groups + st.Products + st.Programs + st.Promotions + st.CardKinds + st.Cards + st.Lots + st.CardKeys
}

func addStats(a, b store.ImportStats) store.ImportStats {
	return store.ImportStats{Stores: a.Stores + b.Stores, Groups: a.Groups + b.Groups, Products: a.Products + b.Products,
		Programs: a.Programs + b.Programs, Promotions: a.Promotions + b.Promotions, CardKinds: a.CardKinds + b.CardKinds,
		Cards: a.Cards + b.Cards, Lots: a.Lots + b.Lots, CardKeys: a.CardKeys + b.CardKeys}
}

// pageCards counts the cards of snapshot page f in its own range (after
// the previous page's last code, up to its Next): a page also carries the
// cards of the till's entries head office folded since the watermark it
// was asked with, which may belong to another page's range, and counting
// those too would end above the cards there are.
func pageCards(f *wire.Feed, after string) int64 {
	var n int64
	for _, c := range f.Replica.Cards {
		if c.Code > after && (!f.More || c.Code <= f.Next) {
			n++
		}
	}
	return n
}

// loadState is a first load in progress (sync_state loadKey): the first
// page's cursor, the last card code imported (the next page starts after
// it), the cards so far (Status), and whether the last page is in (the
// delta from First is what is left).
type loadState struct {
	First string `json:"first"`
	After string `json:"after"`
	Cards int64  `json:"cards"`
	Done  bool   `json:"done,omitempty"`
}

// savedLoad is the first load in progress the store holds, if any.
func (c *Client) savedLoad(ctx context.Context) (loadState, bool, error) {
	raw, err := c.o.Store.SyncState(ctx, loadKey)
	if err != nil || raw == "" {
		return loadState{}, false, err
	}
	var ls loadState
	if json.Unmarshal([]byte(raw), &ls) != nil || ls.First == "" {
		return loadState{}, false, nil
	}
	return ls, true, nil
}

// initialLoad imports the whole replica page by page (the progress is in
// Status) and returns the first page's cursor: the delta pulled from it next
// makes the pages consistent with each other and with the watermark
// (headoffice.Snapshot). Its position is saved after each page:
// interrupted (a cut link, a restart), the next one goes on after the last
// page imported, with the first page's cursor, so the delta from it still
// covers every change since (pages are upserts).
// Each page is asked with the watermark the till holds, so head office adds
// the cards of the till's entries it has folded since, with its watermark
// (a till with a journal, e.g. after a feed reset, never counts an entry
// both in a page's lots and from its journal); a page whose watermark is
// behind the till's is not imported (the outcome says so).
func (c *Client) initialLoad(ctx context.Context) (string, pullOutcome, error) {
	ls, resumed, err := c.savedLoad(ctx)
	if err != nil {
		return "", pullOutcome{}, fmt.Errorf("sync first load: %w", err)
	}
	c.mu.Lock()
	c.st.Loading, c.st.LoadedCards, c.st.ReplicaLoaded = true, ls.Cards, false
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.st.Loading = false
		c.mu.Unlock()
	}()
	fetch := func(after string) fetched {
		return c.askPage(ctx, "first load", c.o.SnapshotPage, url.Values{"snapshot": {"1"}}, after)
	}
	if resumed && ls.Done {
		// Every page is in; the delta after them was cut off.
		return ls.First, pullOutcome{}, nil
	}
	if resumed {
		c.log.Info("resuming a first load", "after_card", ls.After, "cards", ls.Cards)
	}
	first, after := ls.First, ls.After
	limitsSaved := false
	ahead := prefetch{log: c.log}
	defer ahead.wait()
	cur := fetch(after)
	for page := 1; ; page++ {
		if cur.err != nil {
			return "", pullOutcome{}, fmt.Errorf("sync first load, page %d: %w", page, cur.err)
		}
		f := cur.f
		if out, err := c.behind(ctx, f, false); err != nil || out.back {
			if err != nil {
				err = fmt.Errorf("sync first load, page %d: %w", page, err)
			}
			return "", out, err
		}
		if first == "" {
			first = f.Cursor
		}
		if f.More {
			ahead.start(func() fetched { return fetch(f.Next) })
		}
		st, err := c.importFeed(ctx, f, !f.More)
		if err != nil {
			return "", pullOutcome{}, fmt.Errorf("sync first load, page %d (cards after %q): %w", page, after, err)
		}
		// Every page of the load carries head office's offline limits:
		// saved with the first, the cards loaded so far are capped even if
		// the load stops here.
		if err := c.saveLimits(ctx, f, &limitsSaved); err != nil {
			return "", pullOutcome{}, fmt.Errorf("sync first load, page %d: %w", page, err)
		}
		c.mu.Lock()
		c.st.LoadedCards += pageCards(f, after)
		c.st.ImportedRecs += int64(countStats(st))
		n := c.st.LoadedCards
		c.mu.Unlock()
		c.log.Info("first load", "page", page, "cards", n)
		b, _ := json.Marshal(loadState{First: first, After: f.Next, Cards: n, Done: !f.More})
		if err := c.o.Store.SetSyncState(ctx, loadKey, string(b)); err != nil {
			return "", pullOutcome{}, fmt.Errorf("sync first load, page %d: %w", page, err)
		}
		if !f.More {
			return first, pullOutcome{}, nil
		}
		after = f.Next
		cur = ahead.wait()
	}
}

// askPage asks for the feed page after position after, q naming the
// feed, with the watermark held now: head office adds the cards of the
// entries its newer watermark adds, so no page leaves a card's lots and
// the watermark apart. A page asked for while the one before is imported
// names an older watermark, which adds more cards, never fewer.
func (c *Client) askPage(ctx context.Context, what string, size int, q url.Values, after string) fetched {
	wm, err := c.o.Store.FoldedThrough(ctx)
	if err != nil {
		return fetched{err: err}
	}
	q.Set("folded", wm)
	q.Set("held", "1") // this till reads wire.Feed.JournalHeld
	if after != "" {
		q.Set("after", after)
	}
	if c.o.StoreID != "" {
		q.Set("store", c.o.StoreID)
	}
	f, err := c.getFeed(ctx, what, size, q)
	return fetched{f: f, err: err}
}

// fetched is a feed page asked for, or why it did not come.
type fetched struct {
	f   *wire.Feed
	err error
}

// prefetch asks for the next feed page while the current one is imported.
// Whatever returns waits for it (the cycle owns the connection and the
// page-size state the request touches).
type prefetch struct {
	log *slog.Logger
	ch  chan fetched
}

func (p *prefetch) start(fetch func() fetched) {
	p.ch = make(chan fetched, 1)
	go func() {
		// Out of the cycle's own recover: a bug in the fetch or the
		// decoding fails the page, not the till.
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("sync feed page fetch panicked", "panic", r, "stack", string(debug.Stack()))
				p.ch <- fetched{err: fmt.Errorf("internal error: %v", r)}
			}
		}()
		p.ch <- fetch()
	}()
}

// wait returns the page started last, once; with none started, nothing.
func (p *prefetch) wait() fetched {
	if p.ch == nil {
		return fetched{}
	}
	got := <-p.ch
	p.ch = nil
	return got
}

// do sends one authenticated request and returns the body of a 2xx answer.
// Only the cycle calls it (under cycleMu), so the secret may change here.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	data, err := c.doOnce(ctx, method, path, q, body)
	var ae *AnswerError
	if errors.As(err, &ae) && ae.packed && !c.gzipBodies.Load() && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnsupportedMediaType) {
		// A head office rolled back to a build that takes no gzip: its
		// answer said so, and the body goes again as it is.
		c.log.Info("sync: head office takes no compressed bodies, sending as is", "status", ae.Status)
		data, err = c.doOnce(ctx, method, path, q, body)
	}
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || c.o.ReloadSecret == nil {
		return data, err
	}
	secret, rerr := c.o.ReloadSecret()
	if rerr != nil || secret == "" || secret == c.o.Secret {
		return data, err
	}
	c.log.Info("sync: secret changed on disk, using it")
	c.o.Secret = secret
	return c.doOnce(ctx, method, path, q, body)
}

func (c *Client) doOnce(parent context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(parent, c.o.RequestTimeout)
	defer cancel()
	// How far the request got, to tell a slow link (the answer started)
	// from a head office that answers nothing or was never reached.
	var connected, sent, answered atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
		GotFirstResponseByte: func() { answered.Store(true) },
	})
	// A request cut off by RequestTimeout says so; one whose caller's
	// context ended (its deadline, or cancelled) does not: that says
	// nothing of head office or the link.
	timedOut := func(err error) error {
		var ne net.Error
		if parent.Err() != nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			return err
		}
		stage := StageConnect
		switch {
		case answered.Load():
			stage = StageBody
		case sent.Load():
			stage = StageWait
		case connected.Load():
			stage = StageSend
		}
		return &TimeoutError{Op: method + " " + path, After: c.o.RequestTimeout, Stage: stage, Err: err}
	}
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	var rd io.Reader
	packed := false
	if len(body) >= minGzipBody && c.gzipBodies.Load() {
		if z, err := gzipped(body); err == nil {
			body, packed = z, true
		}
	}
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if c.o.Secret != "" {
		req.SetBasicAuth(c.o.TillID, c.o.Secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if packed {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", cmp.Or(c.o.Agent, "tillagent"))
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, timedOut(err)
	}
	defer resp.Body.Close()
	answered.Store(true) // the headers are in
	c.gzipBodies.Store(wire.TakesGzip(resp.Header))
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, timedOut(err))
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		plain := false
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error, plain = strings.TrimSpace(string(data)), true
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, &AnswerError{Status: resp.StatusCode, Text: resp.Status, Message: e.Error,
			Plain: plain, URL: c.base.JoinPath(path).String(), RetryAfter: retryAfter(resp.Header), packed: packed})
	}
	return data, nil
}

// TimeoutError is a request to head office that got no whole answer
// within Options.RequestTimeout (config sync.request_timeout), with how far
// it got (Stage): an answer that started but did not arrive whole is a
// link that works but is slow (a feed page, or a push batch, too big to
// arrive in time); no answer at all is a head office that does not answer.
type TimeoutError struct {
	Op    string        // "GET /v1/till/feed"
	After time.Duration // the RequestTimeout
	Stage string        // StageConnect, StageSend, StageWait or StageBody
	Err   error
}

// How far a request that timed out got.
const (
	StageConnect = "connect" // no connection to head office (or no TLS handshake)
	StageSend    = "send"    // connected, the request not all sent (a slow link up)
	StageWait    = "wait"    // request sent, not a byte of answer (head office not answering)
	StageBody    = "body"    // the answer started, not all of it arrived (a slow link down)
)

func (e *TimeoutError) Error() string {
	var what string
	switch e.Stage {
	case StageConnect:
		what = "no connection to head office"
	case StageSend:
		what = "the request was not all sent"
	case StageWait:
		what = "head office sent no answer (connected, request sent)"
	default:
		what = "the answer started but did not arrive whole"
	}
	return fmt.Sprintf("%s: %s within the request timeout (%s): %v", e.Op, what, e.After, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Push reports whether the request was a push of journal entries (its
// size is sync.batch_size), not a feed page (sync.page_size).
func (e *TimeoutError) Push() bool { return e.Op == http.MethodPost+" "+pushPath }

// pushPath is where the till pushes its journal.
const pushPath = "/v1/till/journal"

// AnswerError is head office answering a request with an error: it was
// reached, so the network is not what to check.
type AnswerError struct {
	Status  int    // HTTP status code
	Text    string // "401 Unauthorized"
	Message string // head office's error
	// Plain: the body was not head office's JSON error (another server,
	// or no head office route at this URL).
	Plain bool
	URL   string // the URL asked, without the query
	// RetryAfter is how long head office (or a proxy before it) asked the
	// till to wait before asking again (the Retry-After header; 0: none).
	RetryAfter time.Duration
	// packed: the request body went gzip-compressed.
	packed bool
}

// retryAfter reads a Retry-After header: delay-seconds, or an HTTP date
// taken against the answer's own Date (the till's clock may be a day
// off; without a Date, against the till's). 0 when absent, unreadable or
// past; at most a day.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(max(0, min(n, int64(24*time.Hour/time.Second)))) * time.Second
	} else if errors.Is(err, strconv.ErrRange) && v[0] != '-' {
		return 24 * time.Hour // more digits than an int64: longer than a day
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now := time.Now()
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	return max(0, min(at.Sub(now), 24*time.Hour))
}

func (e *AnswerError) Error() string {
	if e.Plain {
		// Maybe not head office at all (a TLS port asked in plain HTTP).
		return e.URL + " answered " + e.Text + ": " + e.Message
	}
	return "head office answered " + e.Text + ": " + e.Message
}

// Why a cycle failed, for what the till tells its technician.
const (
	FailNetwork      = "network"          // head office not reached
	FailNoAnswer     = "no_answer"        // connected and asked, but head office sent nothing back within the request timeout
	FailTimeout      = "timeout"          // the request or its answer did not get through whole within the request timeout (a slow link)
	FailTLS          = "tls"              // head office's TLS certificate not trusted (sync.ca_file), or not valid by the till's clock
	FailTillCert     = "till_certificate" // the till's own TLS certificate refused by head office in the handshake (expired, not yet valid, another CA), or unusable (sync.cert_file)
	FailWrongURL     = "wrong_url"        // something answered at sync.url, but not head office's API (wrong scheme or path)
	FailUnauthorized = "unauthorized"     // head office does not know the till or its secret
	FailRefused      = "refused"          // journal entries refused (conflict, rejected); the rest went through
	FailHeadOffice   = "head_office"      // head office answered with another error
	FailOverloaded   = "overloaded"       // head office (or a proxy before it) too busy: it said when to come back (503 or 429 with Retry-After)
	FailBusy         = "busy"             // sync now gave up waiting for the cycle already running
)

// FailureKind sorts a cycle's error (SyncNow's) into one of the Fail
// kinds.
func FailureKind(err error) string {
	var ae *AnswerError
	var te *TimeoutError
	var be *BusyError
	switch {
	case onlyRefused(err):
		return FailRefused
	case errors.As(err, &be):
		return FailBusy
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return FailUnauthorized
	case errors.As(err, &ae) && wrongURL(ae):
		return FailWrongURL
	case errors.As(err, &ae) && overloaded(ae):
		return FailOverloaded
	case errors.As(err, &ae):
		return FailHeadOffice
	case errors.As(err, &te) && te.Stage == StageConnect:
		return FailNetwork
	case errors.As(err, &te) && te.Stage == StageWait:
		return FailNoAnswer
	case errors.As(err, &te):
		return FailTimeout
	case tillCertRefused(err):
		return FailTillCert
	case untrusted(err):
		return FailTLS
	case notTLS(err):
		return FailWrongURL
	}
	return FailNetwork
}

// onlyRefused: every error err holds is head office refusing entries. A
// push refused joined with a pull that failed is the pull's failure: it
// was shown as refused, and SyncNow took the failed cycle for a good one.
func onlyRefused(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *refusedError:
		return true
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		for _, x := range errs {
			if x != nil && !onlyRefused(x) {
				return false
			}
		}
		return len(errs) > 0
	case interface{ Unwrap() error }:
		return onlyRefused(e.Unwrap())
	}
	return false
}

// overloaded: head office, or a proxy before it, is too busy and said
// when to come back.
func overloaded(ae *AnswerError) bool {
	return ae.RetryAfter > 0 && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests)
}

// wrongURL: the answer came from something at sync.url that is not head
// office's API: a TLS server asked in plain HTTP (Go's and nginx's 400
// texts), or no such route (a 404 that is not head office's JSON error, or
// head office's own "no endpoint": a path in sync.url).
func wrongURL(ae *AnswerError) bool {
	switch {
	case ae.Status == http.StatusBadRequest && ae.Plain &&
		(strings.Contains(ae.Message, "HTTP request to an HTTPS server") || strings.Contains(ae.Message, "plain HTTP request was sent to HTTPS port")):
		return true
	case ae.Status == http.StatusNotFound:
		return ae.Plain || strings.HasPrefix(ae.Message, "no endpoint ")
	}
	return false
}

// untrusted: head office's certificate did not verify (an unknown CA, an
// expired certificate, another host name).
func untrusted(err error) bool {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.As(err, &cv)
}

// tillCertRefused: head office refused the till's certificate in the
// handshake (its TLS alert: Go's client reports it as a "remote error"
// whose text is the alert's; its type is not exported), or the till could
// not present it (its files, read at each handshake).
func tillCertRefused(err error) bool {
	var cf *CertFileError
	if errors.As(err, &cf) {
		return true
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	switch strings.TrimPrefix(oe.Err.Error(), "tls: ") {
	case "bad certificate", "unsupported certificate", "revoked certificate", "expired certificate",
		"unknown certificate", "unknown certificate authority", "certificate required", "access denied":
		return true
	}
	return false
}

// notTLS: https:// asked of a server that speaks plain HTTP.
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || (err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"))
}

// minGzipBody is the smallest push worth compressing (a kilobyte).
const minGzipBody = 1024

// gzipped is body compressed at gzip's fastest level: a push batch is
// JSON, 6–15 times smaller for a millisecond of the till's CPU.
func gzipped(body []byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
