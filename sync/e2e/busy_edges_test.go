package e2e

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/sync/client"
)

// Edge cases of tills meeting a head office that sheds (sync/headoffice/admit.go)
// end to end: real head office on PostgreSQL, real tills, a proxy between.

// edgePlaceHolder takes head office's only place on demand: till H's push,
// its row at head office locked by a transaction of the test's, waits in
// head office until release.
type edgePlaceHolder struct {
	t    *testing.T
	h    *ho
	tl   *till
	conn *pgx.Conn
	tx   pgx.Tx
	done chan error
}

// newEdgePlaceHolder enrols and loads till id, with a sale pending.
func newEdgePlaceHolder(t *testing.T, h *ho, p *proxy, id string) *edgePlaceHolder {
	t.Helper()
	tl := newTillWith(t, h, p, id, "S001", 0, func(o *client.Options) { o.RequestTimeout = time.Minute })
	syncEach(t, tl)
	tl.sell(t, card13, basket(), "")
	conn, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &edgePlaceHolder{t: t, h: h, tl: tl, conn: conn}
}

// take locks H's row, starts its push, and returns once it holds the
// place. It may run in the proxy's handler: it does not call t.Fatal.
func (q *edgePlaceHolder) take() error {
	ctx := context.Background()
	tx, err := q.conn.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tills WHERE till_id = $1 FOR UPDATE`, q.tl.id); err != nil {
		return err
	}
	q.tx, q.done = tx, make(chan error, 1)
	go func() { q.done <- q.tl.c.SyncNow(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); metricOf(q.h, "headoffice_till_requests_in_flight") != 1; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
	}
	return nil
}

// release ends the lock and waits for H's push to go through.
func (q *edgePlaceHolder) release() {
	q.t.Helper()
	if err := q.tx.Rollback(context.Background()); err != nil {
		q.t.Fatal(err)
	}
	if err := <-q.done; err != nil {
		q.t.Fatalf("place holder %s's sync once free: %v", q.tl.id, err)
	}
}

var sendAgainRe = regexp.MustCompile(`send again in (\d+) s`)

// TestFirstLoadResumesAfterAShedPage: a new till's first load (8 demo
// cards, pages of 3) has its second page shed (head office's only place
// taken just as that page is asked). The till's loop waits the
// Retry-After head office gave (BusyRetryAfter 1 ms: the least, 1 s), not
// its 5-10 ms backoff, then asks the second page again, after the first page's last
// card, not the first page: page 1 is asked once in all, the load ends
// with the 8 cards counted once and the till ok; the feed page shed is
// counted at head office, and nothing is left in flight.
func TestFirstLoadResumesAfterAShedPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &ho{t: t, dsn: pgDSN(t)}
	h.admit.max, h.admit.wait, h.admit.retryWait = 1, 150*time.Millisecond, time.Millisecond
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	holder := newEdgePlaceHolder(t, h, p, "S001-T79")

	type ask struct {
		after string
		at    time.Time
	}
	var mu sync.Mutex
	var asks []ask
	var shedOnce atomic.Bool
	holdErr := make(chan error, 1)
	p.onFeed = func(r *http.Request) {
		if id, _, _ := r.BasicAuth(); id != "S001-T71" || r.URL.Query().Get("snapshot") != "1" {
			return
		}
		after := r.URL.Query().Get("after")
		mu.Lock()
		asks = append(asks, ask{after, time.Now()})
		mu.Unlock()
		if after != "" && !shedOnce.Swap(true) {
			holdErr <- holder.take()
		}
	}
	tl := newTillWith(t, h, p, "S001-T71", "S001", 0, func(o *client.Options) { o.BackoffMax = time.Minute })
	go tl.c.Run(ctx)
	if err := <-holdErr; err != nil {
		t.Fatal(err)
	}
	st := waitFailed(t, tl)
	m := sendAgainRe.FindStringSubmatch(st.LastError)
	if m == nil {
		t.Fatalf("the till's error %q does not carry head office's Retry-After", st.LastError)
	}
	ra, _ := strconv.Atoi(m[1])
	if wait := st.NextAttempt.Sub(st.LastAttempt); ra != 1 || wait != time.Second {
		t.Fatalf("the loop waits %v after its page was shed with Retry-After %d s, want 1 s", wait, ra)
	}
	holder.release()
	for deadline := time.Now().Add(10 * time.Second); !tl.c.Status().ReplicaLoaded || tl.c.Status().State != "ok"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the till did not finish its first load: %+v", tl.c.Status())
		}
	}
	mu.Lock()
	got := slices.Clone(asks)
	mu.Unlock()
	var afters []string
	for _, a := range got {
		afters = append(afters, a.after)
	}
	if len(got) < 4 || got[0].after != "" {
		t.Fatalf("first-load pages asked after %q, want page 1, page 2 (shed), page 2 again, page 3", afters)
	}
	shed := got[1]
	if slices.Contains(afters[1:], "") {
		t.Fatalf("first-load pages asked after %q: the first page asked again, the load started over", afters)
	}
	if got[2].after != shed.after {
		t.Fatalf("after the shed page (after %q) the till asked after %q, want the same page again", shed.after, got[2].after)
	}
	if gap := got[2].at.Sub(shed.at); gap < time.Duration(ra)*time.Second {
		t.Fatalf("the shed page was asked again %v later, want at least its Retry-After (%d s)", gap, ra)
	}
	codes, err := tl.st.CardCodes(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := tl.c.Status().LoadedCards; n != 8 || len(codes) != 8 {
		t.Fatalf("first load counted %d cards, the till holds %d, want the demo's 8", n, len(codes))
	}
	if n := metricOf(h, "headoffice_till_requests_shed_total"); n != 1 {
		t.Fatalf("%v till requests shed, want the one page", n)
	}
	waitHOMetric(t, h, "headoffice_till_requests_in_flight", 0)
}

// TestPushShedMidBacklogAppliedOnce: a till with a backlog of more than
// one batch (batches of 3) has its second batch shed. Sync now says
// overloaded; the first batch is acknowledged, the rest still pending.
// Once head office has room, the next sync pushes the rest: head office
// holds each of the till's entries exactly once (no entry lost, none
// twice, the same ids as the till's journal), the till has nothing
// pending and nothing refused.
func TestPushShedMidBacklogAppliedOnce(t *testing.T) {
	ctx := context.Background()
	h := &ho{t: t, dsn: pgDSN(t)}
	h.admit.max, h.admit.wait, h.admit.retryWait = 1, 100*time.Millisecond, time.Second
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	holder := newEdgePlaceHolder(t, h, p, "S001-T79")
	tl := newTill(t, h, p, "S001-T72", "S001", 0)
	syncEach(t, tl)
	for range 4 {
		tl.sell(t, card13, basket(), "")
	}
	journal := tl.journal(t)
	pending, err := tl.st.PendingCount(ctx)
	if err != nil || pending < 4 || pending != len(journal) {
		t.Fatalf("pending %d (%v), journal %d: want a backlog of more than one batch", pending, err, len(journal))
	}

	var pushes atomic.Int32
	holdErr := make(chan error, 1)
	p.onJournal = func(r *http.Request) {
		if id, _, _ := r.BasicAuth(); id == "S001-T72" && pushes.Add(1) == 2 {
			holdErr <- holder.take()
		}
	}
	err = tl.c.SyncNow(ctx)
	if e := <-holdErr; e != nil {
		t.Fatal(e)
	}
	if client.FailureKind(err) != client.FailOverloaded {
		t.Fatalf("sync now with the second batch shed: %v (kind %s), want overloaded", err, client.FailureKind(err))
	}
	if n, err := tl.st.PendingCount(ctx); err != nil || n != pending-3 {
		t.Fatalf("pending after the shed batch: %d (%v), want %d (the first batch acknowledged)", n, err, pending-3)
	}
	holder.release()
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync now once head office has room: %v", err)
	}
	if n, err := tl.st.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("pending %d (%v), want none", n, err)
	}
	if st := tl.c.Status(); st.RejectedCount != 0 || st.State != "ok" {
		t.Fatalf("till status %+v, want ok with nothing refused", st)
	}
	conn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM journal WHERE till_id = 'S001-T72' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range journal {
		want = append(want, e.ID)
	}
	slices.Sort(want)
	if !slices.Equal(held, want) {
		t.Fatalf("head office holds %q of the till's entries, want each of %q once", held, want)
	}
	if n := pushes.Load(); n < 3 {
		t.Fatalf("%d pushes, want the first batch, the shed one and the rest", n)
	}
	waitHOMetric(t, h, "headoffice_till_requests_in_flight", 0)
}
