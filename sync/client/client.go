// Package client is the till side of sync: a background loop that pushes
// the unacknowledged journal to head office in batches, pulls the replica
// feed since its cursor and imports it, and backs off (with a cap) while
// head office is unreachable. It never holds the store across a network
// call, so a sale is never blocked by sync.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// cursorKey is the sync_state key of the feed cursor.
const cursorKey = "feed_cursor"

// Options configure New. URL, TillID, Secret and Store are required.
type Options struct {
	// URL of head office, e.g. https://ho.example.ru (config sync.url).
	URL     string
	TillID  string // config till.till_id
	StoreID string // config till.store_id
	Secret  string // issued at enrolment (config sync.secret)
	Store   *store.Store
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
	// SnapshotPage is the cards per page of the first load; 0 means 5000.
	SnapshotPage int
	// RequestTimeout bounds each HTTP request; 0 means 60s.
	RequestTimeout time.Duration
	Clock          func() time.Time
}

// Status is what /v1/status and `tillctl sync status` show.
type Status struct {
	// State is "idle" (not run yet), "ok" (last cycle succeeded) or
	// "failing" (head office unreachable or refusing; see LastError).
	State        string    `json:"state"`
	LastPush     time.Time `json:"last_push,omitzero"`     // last successful push
	LastPull     time.Time `json:"last_pull,omitzero"`     // last successful feed import
	LastAttempt  time.Time `json:"last_attempt,omitzero"`  // last cycle started
	LastError    string    `json:"last_error,omitempty"`   // of the last failed cycle
	LastErrorAt  time.Time `json:"last_error_at,omitzero"` //
	Failures     int       `json:"consecutive_failures"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	Backlog      int       `json:"backlog"` // unacknowledged journal entries
	Pushed       int64     `json:"pushed"`  // entries acknowledged since start
	Cursor       string    `json:"cursor"`  // feed cursor
	Folded       string    `json:"folded_through,omitempty"`
	ImportedRecs int64     `json:"imported_records"` // replica records imported since start
	// Loading is true during the first load; LoadedCards counts its progress.
	Loading     bool  `json:"initial_load,omitempty"`
	LoadedCards int64 `json:"initial_load_cards,omitempty"`
}

// Client is the till's sync loop.
type Client struct {
	o    Options
	base *url.URL
	log  *slog.Logger
	kick chan struct{}

	cycleMu sync.Mutex // one cycle at a time (Run and SyncNow)
	mu      sync.Mutex
	st      Status
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
	case o.Secret == "":
		return nil, fmt.Errorf("sync client for till %s: empty secret", o.TillID)
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
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Client{o: o, base: u, log: o.Logger.With("component", "sync"), kick: make(chan struct{}, 1), st: Status{State: "idle"}}, nil
}

// Run syncs until ctx ends: a cycle every Interval, sooner after SyncNow,
// later (doubling up to BackoffMax) while cycles fail. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	for {
		err := c.cycle(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := c.o.Interval
		if err != nil {
			wait = c.backoff()
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
		case <-c.kick:
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

// SyncNow runs one cycle now (push everything pending, then pull the feed)
// and returns its error; a running Run loop then starts its interval anew.
func (c *Client) SyncNow(ctx context.Context) error {
	err := c.cycle(ctx)
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return err
}

// Status returns a copy of the current status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Client) cycle(ctx context.Context) error {
	c.cycleMu.Lock()
	defer c.cycleMu.Unlock()
	c.mu.Lock()
	c.st.LastAttempt = c.o.Clock()
	c.mu.Unlock()
	err := c.push(ctx)
	if err == nil {
		err = c.pull(ctx)
	}
	backlog, berr := c.o.Store.PendingCount(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if berr == nil {
		c.st.Backlog = backlog
	}
	if err != nil {
		c.st.State, c.st.LastError, c.st.LastErrorAt = "failing", err.Error(), c.o.Clock()
		c.st.Failures++
		return err
	}
	c.st.State, c.st.Failures = "ok", 0
	return nil
}

// push sends pending entries batch by batch until none is left or head
// office leaves some unacknowledged.
func (c *Client) push(ctx context.Context) error {
	for {
		pend, err := c.o.Store.PendingChain(ctx, c.o.BatchSize)
		if err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		if len(pend) == 0 {
			c.mu.Lock()
			c.st.LastPush = c.o.Clock()
			c.mu.Unlock()
			return nil
		}
		b := wire.Batch{TillID: c.o.TillID, Entries: make([]wire.Entry, len(pend))}
		for i, p := range pend {
			b.Entries[i] = wire.Entry{Entry: p.Entry, Prev: p.Prev}
			b.Entries[i].Acked = false
		}
		body, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		data, err := c.do(ctx, http.MethodPost, "/v1/till/journal", nil, body)
		if err != nil {
			return fmt.Errorf("sync push of %d entries: %w", len(pend), err)
		}
		res, err := wire.DecodeBatchResult(data)
		if err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		sent := map[string]bool{}
		for _, e := range b.Entries {
			sent[e.ID] = true
		}
		var acked []string
		var refused []string
		for _, r := range res.Results {
			switch {
			case !sent[r.ID]:
				return fmt.Errorf("sync push: head office answered for entry %s, which was not sent", r.ID)
			case r.Acked():
				acked = append(acked, r.ID)
			default:
				refused = append(refused, fmt.Sprintf("%s %s: %s", r.ID, r.Status, r.Error))
			}
		}
		if err := c.o.Store.MarkAcked(ctx, acked); err != nil {
			return fmt.Errorf("sync push: %w", err)
		}
		c.mu.Lock()
		c.st.Pushed += int64(len(acked))
		if res.FoldedThrough != "" {
			c.st.Folded = res.FoldedThrough
		}
		c.mu.Unlock()
		if len(refused) > 0 {
			return fmt.Errorf("sync push: head office refused %d entries: %s", len(refused), strings.Join(refused, "; "))
		}
		if len(acked) < len(pend) {
			return fmt.Errorf("sync push: head office acknowledged %d of %d entries", len(acked), len(pend))
		}
	}
}

// pull imports the feed since the saved cursor, then saves the new cursor.
// A crash between the two imports the same changes again, which is a no-op.
func (c *Client) pull(ctx context.Context) error {
	cur, err := c.o.Store.SyncState(ctx, cursorKey)
	if err != nil {
		return fmt.Errorf("sync pull: %w", err)
	}
	if cur == "" {
		if cur, err = c.initialLoad(ctx); err != nil {
			return err
		}
	}
	q := url.Values{}
	q.Set("cursor", cur)
	if c.o.StoreID != "" {
		q.Set("store", c.o.StoreID)
	}
	data, err := c.do(ctx, http.MethodGet, "/v1/till/feed", q, nil)
	if err != nil {
		return fmt.Errorf("sync pull since %q: %w", cur, err)
	}
	f, err := wire.DecodeFeed(data)
	if err != nil {
		return fmt.Errorf("sync pull since %q: %w", cur, err)
	}
	st, err := c.o.Store.Import(ctx, f.Replica)
	if err != nil {
		return fmt.Errorf("sync pull since %q: import feed: %w", cur, err)
	}
	if err := c.o.Store.SetSyncState(ctx, cursorKey, f.Cursor); err != nil {
		return fmt.Errorf("sync pull: %w", err)
	}
	if f.Offline != nil {
		if err := c.o.Store.SaveOfflineLimits(ctx, *f.Offline, c.o.Clock()); err != nil {
			return fmt.Errorf("sync pull: %w", err)
		}
	}
	n := st.Stores + st.Groups + st.Products + st.Programs + st.Promotions + st.CardKinds + st.Cards + st.Lots + st.CardKeys
	if f.Full || n > 0 {
		c.log.Info("replica feed imported", "since", cur, "cursor", f.Cursor, "full", f.Full, "counts", st.String())
	}
	c.mu.Lock()
	c.st.LastPull, c.st.Cursor = c.o.Clock(), f.Cursor
	c.st.ImportedRecs += int64(n)
	if w := f.Replica.FoldedThrough[c.o.TillID]; w != "" {
		c.st.Folded = w
	}
	c.mu.Unlock()
	return nil
}

// initialLoad imports the whole replica page by page (the progress is in
// Status) and returns the first page's cursor: the delta pulled from it next
// makes the pages consistent with each other and with the watermark
// (headoffice.Snapshot). Interrupted, it starts again; pages are upserts.
func (c *Client) initialLoad(ctx context.Context) (string, error) {
	c.mu.Lock()
	c.st.Loading, c.st.LoadedCards = true, 0
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.st.Loading = false
		c.mu.Unlock()
	}()
	type fetched struct {
		f   *wire.Feed
		err error
	}
	fetch := func(after string) fetched {
		q := url.Values{"snapshot": {"1"}, "limit": {fmt.Sprint(c.o.SnapshotPage)}}
		if after != "" {
			q.Set("after", after)
		}
		if c.o.StoreID != "" {
			q.Set("store", c.o.StoreID)
		}
		data, err := c.do(ctx, http.MethodGet, "/v1/till/feed", q, nil)
		if err != nil {
			return fetched{err: err}
		}
		f, err := wire.DecodeFeed(data)
		return fetched{f: f, err: err}
	}
	first, after := "", ""
	cur := fetch("")
	for page := 1; ; page++ {
		if cur.err != nil {
			return "", fmt.Errorf("sync first load, page %d: %w", page, cur.err)
		}
		f := cur.f
		if first == "" {
			first = f.Cursor
		}
		// The next page is fetched and decoded while this one is imported.
		next := make(chan fetched, 1)
		if f.More {
			go func(after string) { next <- fetch(after) }(f.Next)
		}
		st, err := c.o.Store.Import(ctx, f.Replica)
		if err != nil {
			if f.More {
				<-next
			}
			return "", fmt.Errorf("sync first load, page %d (cards after %q): import: %w", page, after, err)
		}
		c.mu.Lock()
		c.st.LoadedCards += int64(st.Cards)
		c.st.ImportedRecs += int64(st.Stores + st.Groups + st.Products + st.Programs + st.Promotions + st.CardKinds + st.Cards + st.Lots + st.CardKeys)
		n := c.st.LoadedCards
		c.mu.Unlock()
		c.log.Info("first load", "page", page, "cards", n)
		if !f.More {
			return first, nil
		}
		after = f.Next
		cur = <-next
	}
}

// do sends one authenticated request and returns the body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.RequestTimeout)
	defer cancel()
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.o.TillID, c.o.Secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return nil, fmt.Errorf("%s %s: head office answered %s: %s", method, path, resp.Status, e.Error)
	}
	return data, nil
}
