package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// card17 is on the first page of a first load in pages of 3 (codes sort:
// 2600000000017, 2700000000014, 2800000000011 | 29…18, 29…25, 29…32 |
// 29…49, 29…56); 700 points on the demo.
const card17 = "2600000000017"

// TestCutFirstLoadKeepsOfflineCaps: head office publishes a card cap of
// 150 and a till cap of 400. A new till's first load (pages of 3 cards) is
// cut off after its first page and head office stays unreachable. The
// cards of that page are in the till and spendable, and they are held to
// head office's caps, not to their whole balance; status says the replica
// is not loaded, with the cards loaded so far.
func TestCutFirstLoadKeepsOfflineCaps(t *testing.T) {
	ctx := context.Background()
	off := store.OfflineLimits{CardCap: decimal.NewFromInt(150), TillCap: decimal.NewFromInt(400)}
	h := startHOWith(t, pgDSN(t), off)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	p.onFeed = func(r *http.Request) {
		if q := r.URL.Query(); q.Get("snapshot") == "1" && q.Get("after") == "" {
			p.down.Store(true) // this page is answered, none after it
		}
	}
	tl := newTill(t, h, p, "S001-T90", "S001", 0)
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("the first load went through with head office unreachable after its first page")
	}
	b, err := tl.st.Spendable(ctx, card17, tl.now)
	if err != nil {
		t.Fatalf("card %s from the first page: %v", card17, err)
	}
	if !b.Spendable.Decimal().GreaterThan(decimal.NewFromInt(150)) {
		t.Fatalf("card %s spendable %s: the test needs more than the cap", card17, b.Spendable)
	}
	l, why, err := tl.st.OfflineRedeemLimit(ctx, card17, tl.now)
	if err != nil {
		t.Fatal(err)
	}
	if l.String() != "150" || why != store.OfflineCardCap {
		t.Fatalf("card %s after a cut first load: offline limit %s (%q), want 150 (card cap)", card17, l, why)
	}
	st := tl.c.Status()
	if st.ReplicaLoaded || st.Loading || st.LoadedCards != 3 || st.State != "failing" {
		t.Fatalf("status after the cut first load: loaded %v, loading %v, %d cards, state %s; want not loaded, 3 cards, failing",
			st.ReplicaLoaded, st.Loading, st.LoadedCards, st.State)
	}
}

// TestCutDeltaSavesOfflineCapsAndResumes: the till loaded the replica
// while head office had no offline caps; head office restarts with a card
// cap of 150, ERP corrects two cards and the till pulls the delta in pages
// of one record, cut off after the first. The new cap is in force at once.
// The agent then restarts (a new client on the same store) with head
// office still away and a sale to push: its status shows the saved cursor
// and the delta's page already imported, not "" and 0.
func TestCutDeltaSavesOfflineCapsAndResumes(t *testing.T) {
	ctx := context.Background()
	opt := func(o *client.Options) { o.DeltaPage = 1 }
	h, p, tl := loadedTill(t, "S001-T91", opt)
	if _, why, _ := tl.st.OfflineRedeemLimit(ctx, card17, tl.now); why != "" {
		t.Fatalf("before: an offline rule binds (%s) with head office publishing none", why)
	}
	cursor, err := tl.st.SyncState(ctx, "feed_cursor")
	if err != nil || cursor == "" {
		t.Fatalf("cursor after the first load: %q, %v", cursor, err)
	}
	h.offline = store.OfflineLimits{CardCap: decimal.NewFromInt(150)}
	h.restart(p)
	for i, card := range []string{card13, "2900000000025"} {
		if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "cut-" + strconv.Itoa(i), Card: card, Points: decimal.NewFromInt(5), Reason: "delta"}); err != nil {
			t.Fatal(err)
		}
	}
	var deltas atomic.Int32
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("snapshot") == "" && deltas.Add(1) == 1 {
			p.down.Store(true) // the first delta page is answered, none after it
		}
	}
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("the delta went through with head office unreachable after its first page")
	}
	if l, why, err := tl.st.OfflineRedeemLimit(ctx, card17, tl.now); err != nil || l.String() != "150" || why != store.OfflineCardCap {
		t.Fatalf("after the first page of the delta: offline limit %s (%q, %v), want 150 (card cap)", l, why, err)
	}
	if st := tl.c.Status(); st.DeltaPages != 1 || st.Cursor != cursor {
		t.Fatalf("status mid-delta: %d pages, cursor %q; want 1 page, cursor %q", st.DeltaPages, st.Cursor, cursor)
	}
	// A sale meanwhile: the next cycle's push fails before any pull.
	tl.sell(t, card13, powder("1"), "")
	// The restart.
	c, err := client.New(client.Options{URL: p.URL(), TillID: tl.id, StoreID: tl.storeID, Secret: tl.secret, Store: tl.st,
		DeltaPage: 1, RequestTimeout: 5 * time.Second, Clock: func() time.Time { return tl.now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SyncNow(ctx); err == nil {
		t.Fatal("sync with head office down went through")
	}
	if st := c.Status(); st.Cursor != cursor || st.DeltaPages != 1 || st.DeltaRecords == 0 || !st.ReplicaLoaded {
		t.Fatalf("status after the restart mid-delta: cursor %q, %d pages, %d records, loaded %v; want cursor %q, the 1 page before the restart",
			st.Cursor, st.DeltaPages, st.DeltaRecords, st.ReplicaLoaded, cursor)
	}
	var after atomic.Int32 // delta pages answered after the restart
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("snapshot") == "" {
			after.Add(1)
		}
	}
	p.down.Store(false)
	if err := c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	// How many pages the rest takes depends on what else the cluster
	// runs (a change shows once no older transaction is open anywhere).
	if st := c.Status(); st.DeltaPages != 1+int(after.Load()) || st.DeltaLoading {
		t.Fatalf("status after the delta: %d pages (loading %v), want the 1 before the restart and the %d after", st.DeltaPages, st.DeltaLoading, after.Load())
	}
	sameBalances(t, h, tl, []string{card13, "2900000000025"})
}

// syncBuf is a log sink the loop writes from its goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestSlowLinkHalvesFeedPages: a link on which a feed page of more than 2
// records starts to arrive (headers, a first byte) but not whole within
// the request timeout (1 s). The till, asking pages of 8, halves the page
// after each such timeout (8, 4, 2), the first load finishes, and the
// delta after it goes on at 2 (one size for the link, first load and
// deltas). Once the link is fast again, a delta of full pages grows the
// size back to 8 (after 8 quick pages at 2, since 4 was slow), logged.
// With every page too slow the cycle fails with a timeout
// (client.FailTimeout), not as if head office were unreachable.
func TestSlowLinkHalvesFeedPages(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	// The first load's cursor past the import: while another package's
	// older transaction runs it would not be, and the delta after the load
	// would read the import again, in enough quick pages to grow.
	caughtUp(t, h, "changes")
	p := newProxy(t, h.hs.URL)
	var mu sync.Mutex
	var snapLimits, deltaLimits []int
	var slowFrom atomic.Int64
	slowFrom.Store(3)
	p.onFeed = func(r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("limit"))
		mu.Lock()
		defer mu.Unlock()
		if q.Get("snapshot") == "1" {
			snapLimits = append(snapLimits, n)
		} else {
			deltaLimits = append(deltaLimits, n)
		}
	}
	p.slowBody = func(r *http.Request) time.Duration {
		if n, _ := strconv.Atoi(r.URL.Query().Get("limit")); int64(n) >= slowFrom.Load() {
			return 1500 * time.Millisecond
		}
		return 0
	}
	logs := &syncBuf{}
	tl := newTillWith(t, h, p, "S001-T92", "S001", 0, func(o *client.Options) {
		o.SnapshotPage, o.DeltaPage, o.MinPage, o.RequestTimeout = 8, 8, 2, time.Second
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("first load on the slow link: %v", err)
	}
	mu.Lock()
	gotSnap, gotDelta := slices.Clone(snapLimits), slices.Clone(deltaLimits)
	mu.Unlock()
	if len(gotSnap) < 6 || !slices.Equal(gotSnap[:3], []int{8, 4, 2}) || slices.ContainsFunc(gotSnap[3:], func(n int) bool { return n != 2 }) {
		t.Fatalf("snapshot page sizes asked %v, want 8, 4, then 2 for each of the 4+ pages", gotSnap)
	}
	if len(gotDelta) == 0 || slices.ContainsFunc(gotDelta, func(n int) bool { return n != 2 }) {
		t.Fatalf("delta page sizes asked %v, want 2 (the size the first load came down to)", gotDelta)
	}
	st := tl.c.Status()
	if st.LoadedCards != 8 || !st.ReplicaLoaded || st.PageSize != 2 || st.State != "ok" {
		t.Fatalf("status after the slow first load: %d cards, loaded %v, page size %d, state %s", st.LoadedCards, st.ReplicaLoaded, st.PageSize, st.State)
	}
	if l := logs.String(); strings.Count(l, "asking smaller pages") != 2 || !strings.Contains(l, "next_page_size=2") {
		t.Fatalf("log does not show the 2 halvings:\n%s", l)
	}
	sameBalances(t, h, tl, []string{card13, card17})

	// The link is fast again: a delta of 40 changes comes in full pages.
	slowFrom.Store(1 << 30)
	for i := range 40 {
		card := []string{card13, card17}[i%2]
		if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "grow-" + strconv.Itoa(i), Card: card, Points: decimal.NewFromInt(1), Reason: "grow"}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	deltaLimits = nil
	mu.Unlock()
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("delta on the fast link: %v", err)
	}
	mu.Lock()
	gotDelta = slices.Clone(deltaLimits)
	mu.Unlock()
	want := []int{2, 2, 2, 2, 2, 2, 2, 2, 4, 8}
	if len(gotDelta) < len(want) || !slices.Equal(gotDelta[:len(want)], want) || slices.ContainsFunc(gotDelta[len(want):], func(n int) bool { return n != 8 }) {
		t.Fatalf("delta page sizes on the fast link %v, want 8 × 2, then 4, then 8", gotDelta)
	}
	if st := tl.c.Status(); st.PageSize != 8 {
		t.Fatalf("page size after the fast delta %d, want 8 (configured)", st.PageSize)
	}
	if l := logs.String(); strings.Count(l, "asking bigger pages") != 2 {
		t.Fatalf("log does not show the 2 growths:\n%s", l)
	}
	sameBalances(t, h, tl, []string{card13, card17})

	slowFrom.Store(1) // now even the smallest page is too slow
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "slow-again", Card: card13, Points: decimal.NewFromInt(1), Reason: "slow"}); err != nil {
		t.Fatal(err)
	}
	err := tl.c.SyncNow(ctx)
	if err == nil || client.FailureKind(err) != client.FailTimeout || !strings.Contains(err.Error(), "answer started but did not arrive whole") {
		t.Fatalf("cycle with every page too slow: %v (kind %s), want a timeout", err, client.FailureKind(err))
	}
}

// TestHungHeadOfficeIsNotASlowLink: head office accepts the connection and
// answers nothing at all. A feed request is not halved and retried: the
// cycle fails after one request (one timeout) as "no answer"
// (client.FailNoAnswer), the page size stays as configured; a push to it
// fails the same way and says it was a push.
func TestHungHeadOfficeIsNotASlowLink(t *testing.T) {
	ctx := context.Background()
	_, p, tl := loadedTill(t, "S001-T98", func(o *client.Options) {
		o.SnapshotPage, o.DeltaPage, o.MinPage, o.RequestTimeout = 800, 800, 100, 300*time.Millisecond
	})
	var feeds atomic.Int32
	p.onFeed = func(*http.Request) { feeds.Add(1) }
	p.hang.Store(true)
	err := tl.c.SyncNow(ctx)
	if client.FailureKind(err) != client.FailNoAnswer || !strings.Contains(err.Error(), "head office sent no answer") {
		t.Fatalf("cycle against a hung head office: %v (kind %s), want no answer", err, client.FailureKind(err))
	}
	if n := feeds.Load(); n != 1 {
		t.Fatalf("%d feed requests, want 1 (a hung head office is not a slow link)", n)
	}
	if st := tl.c.Status(); st.PageSize != 800 {
		t.Fatalf("page size after a hung head office: %d, want 800", st.PageSize)
	}
	tl.sell(t, card13, powder("1"), "")
	err = tl.c.SyncNow(ctx)
	var te *client.TimeoutError
	if client.FailureKind(err) != client.FailNoAnswer || !errors.As(err, &te) || !te.Push() {
		t.Fatalf("push to a hung head office: %v (kind %s), want a push with no answer", err, client.FailureKind(err))
	}
	p.hang.Store(false)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("after head office answers again: %v", err)
	}
}

// TestFirstLoadResumesAfterARestart: a first load in pages of 3 is cut off
// after its first page and the agent restarts (a new client on the same
// store) with head office still away. Its status shows the 3 cards it
// holds (it sells on them), not a replica never loaded; once head office
// is back the load goes on after the last card imported, not from the
// start, and ends with the 8 cards.
func TestFirstLoadResumesAfterARestart(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	p.onFeed = func(r *http.Request) {
		if q := r.URL.Query(); q.Get("snapshot") == "1" && q.Get("after") == "" {
			p.down.Store(true) // this page is answered, none after it
		}
	}
	tl := newTillWith(t, h, p, "S001-T99", "S001", 0, func(o *client.Options) { o.SnapshotPage = 3 })
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("the first load went through with head office unreachable after its first page")
	}
	restart := func() *client.Client {
		c, err := client.New(client.Options{URL: p.URL(), TillID: tl.id, StoreID: tl.storeID, Secret: tl.secret, Store: tl.st,
			SnapshotPage: 3, RequestTimeout: 5 * time.Second, Clock: func() time.Time { return tl.now }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := restart()
	if err := c.SyncNow(ctx); err == nil {
		t.Fatal("sync with head office down went through")
	}
	if st := c.Status(); st.ReplicaLoaded || st.Loading || st.LoadedCards != 3 {
		t.Fatalf("status after the restart: loaded %v, loading %v, %d cards; want not loaded, the 3 cards before the restart",
			st.ReplicaLoaded, st.Loading, st.LoadedCards)
	}
	var afters []string
	var mu sync.Mutex
	p.onFeed = func(r *http.Request) {
		if q := r.URL.Query(); q.Get("snapshot") == "1" {
			mu.Lock()
			afters = append(afters, q.Get("after"))
			mu.Unlock()
		}
	}
	p.down.Store(false)
	c = restart()
	if err := c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(afters) == 0 || afters[0] != "2800000000011" || slices.Contains(afters, "") {
		t.Fatalf("snapshot pages asked after %q, want the load to go on after 2800000000011, the first page's last card", afters)
	}
	if st := c.Status(); !st.ReplicaLoaded || st.LoadedCards != 8 || st.State != "ok" {
		t.Fatalf("status after the resumed load: loaded %v, %d cards, state %s; want loaded, 8 cards, ok", st.ReplicaLoaded, st.LoadedCards, st.State)
	}
	if raw, err := tl.st.SyncState(ctx, "feed_first_load"); err != nil || raw != "" {
		t.Fatalf("first load state after it finished: %q, %v; want none", raw, err)
	}
	sameBalances(t, h, tl, []string{card13, card17, "2900000000049"})
}

// TestFirstLoadCountsEachCardOnce: head office holds entries of till
// S001-T93 on card 2900000000049 (on the last page) when a new store of
// that till loads the replica in pages of 3. The first page also carries
// that card (head office adds the cards of the entries it folded since the
// watermark the till asked with), yet the progress ends at the 8 cards
// there are.
func TestFirstLoadCountsEachCardOnce(t *testing.T) {
	ctx := context.Background()
	h, p, old := loadedTill(t, "S001-T93", nil)
	old.sell(t, "2900000000049", powder("1"), "10")
	if err := old.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	var firstPageCards []string
	fresh := newTill(t, h, p, "S001-T93", "S001", time.Minute)
	if err := fresh.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := h.srv.SnapshotPage(ctx, "S001-T93", headoffice.SnapshotRequest{Limit: 3, Folded: new(string)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range page.Replica.Cards {
		firstPageCards = append(firstPageCards, c.Code)
	}
	if !slices.Contains(firstPageCards, "2900000000049") {
		t.Fatalf("first page %v does not carry the folded card: the test does not test the count", firstPageCards)
	}
	if st := fresh.c.Status(); st.LoadedCards != 8 {
		t.Fatalf("first load progress ended at %d cards, head office holds 8", st.LoadedCards)
	}
}

// TestSyncNowRestartsTheWait: with Run waiting its interval (a minute),
// SyncNow runs one cycle and Run then waits anew, without a cycle of its
// own straight after.
func TestSyncNowRestartsTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, p, tl := loadedTill(t, "S001-T94", func(o *client.Options) { o.Interval = time.Minute; o.Clock = time.Now })
	var feeds atomic.Int32
	p.onFeed = func(*http.Request) { feeds.Add(1) }
	done := make(chan struct{})
	go func() { tl.c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); tl.c.Status().NextAttempt.IsZero(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run's first cycle did not end")
		}
	}
	before := feeds.Load()
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := feeds.Load() - before; n != 1 {
		t.Fatalf("%d pulls after one sync now, want 1 (Run ran a cycle of its own straight after)", n)
	}
	if next := tl.c.Status().NextAttempt; next.Before(time.Now().Add(50 * time.Second)) {
		t.Fatalf("next attempt %v, want about a minute after the sync now", next)
	}
}

// TestStatusWhileACycleRuns: while a cycle runs, status says so and shows
// no next attempt in the past; after a failed cycle and a good one, state
// ok comes with no last_error, the old one shown as previous_error.
func TestStatusWhileACycleRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, p, tl := loadedTill(t, "S001-T95", func(o *client.Options) { o.Clock = time.Now })
	type seen struct {
		st client.Status
		at time.Time
	}
	var mu sync.Mutex
	var during []seen
	var pulls atomic.Int32
	p.onFeed = func(*http.Request) {
		if pulls.Add(1) > 3 {
			return
		}
		time.Sleep(200 * time.Millisecond)
		st := tl.c.Status()
		mu.Lock()
		during = append(during, seen{st, time.Now()})
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() { tl.c.Run(ctx); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); pulls.Load() < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not run 4 cycles")
		}
	}
	cancel()
	<-done
	mu.Lock()
	for i, s := range during {
		if !s.st.Running || (!s.st.NextAttempt.IsZero() && s.st.NextAttempt.Before(s.at)) {
			t.Errorf("status during cycle %d at %v: running %v, next attempt %v in the past",
				i+1, s.at.Format(time.StampMilli), s.st.Running, s.st.NextAttempt.Format(time.StampMilli))
		}
	}
	mu.Unlock()

	p.onFeed = nil
	p.down.Store(true)
	if err := tl.c.SyncNow(context.Background()); err == nil {
		t.Fatal("sync with head office down went through")
	}
	failed := tl.c.Status()
	p.down.Store(false)
	if err := tl.c.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := tl.c.Status()
	if st.State != "ok" || st.LastError != "" || !st.LastErrorAt.IsZero() || st.PreviousError != failed.LastError || st.PreviousErrorAt.IsZero() || st.Running {
		t.Fatalf("status after recovering: state %s, last_error %q at %v, previous_error %q; want ok, none, previous %q",
			st.State, st.LastError, st.LastErrorAt, st.PreviousError, failed.LastError)
	}
}

// TestRepushShowsTheSavedPosition: head office is restored from a backup
// taken before five of the till's entries; the till pushes them again in
// batches of 2. At every batch its status shows the re-push position the
// store has saved, not the one the re-push began at.
func TestRepushShowsTheSavedPosition(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T96", func(o *client.Options) { o.BatchSize = 2 })
	tl.sell(t, card13, powder("1"), "")
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	bk := takeBackup(t, h)
	for i := 0; i < 5; i++ {
		tl.sell(t, card13, powder("1"), "")
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	bk.restore(t, h, p)
	type seen struct{ shown, saved string }
	var mu sync.Mutex
	var pushes []seen
	p.onJournal = func(*http.Request) {
		after, repushing, err := tl.st.Repush(ctx)
		if err != nil || !repushing {
			return
		}
		mu.Lock()
		pushes = append(pushes, seen{tl.c.Status().RepushAfter, after})
		mu.Unlock()
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) < 3 {
		t.Fatalf("%d re-push batches, want 3 (5 entries in batches of 2)", len(pushes))
	}
	for i, s := range pushes {
		if s.shown != s.saved {
			t.Errorf("re-push batch %d: status repush_after %q, the store's position %q", i+1, s.shown, s.saved)
		}
	}
	if st := tl.c.Status(); st.Repushing || st.Backlog != 0 {
		t.Fatalf("after the re-push: repushing %v, backlog %d", st.Repushing, st.Backlog)
	}
}

// TestSyncNowDuringARunningCycle: head office takes longer than the request
// timeout to answer the feed. Sync now while the loop's cycle waits for it
// takes that cycle's timeout as its answer, without a second request; sync
// now whose own wait ends first says a cycle is running
// (client.FailBusy).
func TestSyncNowDuringARunningCycle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, p, tl := loadedTill(t, "S001-T97", func(o *client.Options) {
		o.Interval, o.BackoffMin, o.BackoffMax = time.Hour, time.Minute, time.Minute
		o.RequestTimeout, o.DeltaPage, o.Clock = 400*time.Millisecond, 50, time.Now
	})
	var feeds atomic.Int32
	p.onFeed = func(r *http.Request) {
		feeds.Add(1)
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}
	done := make(chan struct{})
	go func() { tl.c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); feeds.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the loop's cycle did not ask the feed")
		}
	}
	err := tl.c.SyncNow(context.Background())
	if client.FailureKind(err) != client.FailNoAnswer {
		t.Fatalf("sync now during the loop's cycle: %v (%s), want its timeout (no answer)", err, client.FailureKind(err))
	}
	if n := feeds.Load(); n != 1 {
		t.Fatalf("%d feed requests, want only the loop's (sync now went at head office again at once)", n)
	}
	// The loop now waits its backoff (a minute): sync now runs a cycle,
	// and a second one that waits at most 50 ms for it gives up.
	first := make(chan error, 1)
	go func() { first <- tl.c.SyncNow(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); feeds.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("sync now did not ask the feed")
		}
	}
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := tl.c.SyncNow(short); client.FailureKind(err) != client.FailBusy || !strings.Contains(err.Error(), "running since") {
		t.Fatalf("sync now giving up its wait: %v (%s), want busy", err, client.FailureKind(err))
	}
	if err := <-first; client.FailureKind(err) != client.FailNoAnswer {
		t.Fatalf("first sync now: %v, want a timeout", err)
	}
	if n := feeds.Load(); n != 2 {
		t.Fatalf("%d feed requests, want 2", n)
	}
}

// TestRunStartsFromItsOwnCycle: a sync now that went well before the loop
// started does not decide the loop's first wait: head office is down by
// then, the loop's first cycle fails, and it backs off (at most 80 ms)
// instead of waiting the one-minute interval the old result would give.
func TestRunStartsFromItsOwnCycle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, p, tl := loadedTill(t, "S001-T96", func(o *client.Options) { o.Interval = time.Minute })
	p.down.Store(true)
	done := make(chan struct{})
	go func() { tl.c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := tl.c.Status()
		if !st.NextAttempt.IsZero() {
			if st.State != "failing" || st.NextAttempt.Sub(st.LastAttempt) > 80*time.Millisecond {
				t.Fatalf("after a failed first cycle: state %s, next attempt in %v, want failing and the backoff (at most 80ms)", st.State, st.NextAttempt.Sub(st.LastAttempt))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Run's first cycle did not end")
		}
	}
}

// TestLastPushOnlyWhenHeadOfficeTookIt: last_push is the last push that
// went through. A quiet till with head office down had it moved by every
// failing cycle, as the push found nothing to send before any request
// (found by a QA pass); a sale pushed once head office is back moves it.
func TestLastPushOnlyWhenHeadOfficeTookIt(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	_, p, tl := loadedTill(t, "S001-T71", func(o *client.Options) { o.Clock = func() time.Time { clock = clock.Add(time.Second); return clock } })
	good := tl.c.Status().LastPush
	if good.IsZero() {
		t.Fatal("no last_push after the first load")
	}
	p.down.Store(true)
	for range 2 {
		if err := tl.c.SyncNow(ctx); err == nil {
			t.Fatal("sync with head office down went through")
		}
	}
	if st := tl.c.Status(); st.State != "failing" || !st.LastPush.Equal(good) {
		t.Fatalf("head office down, nothing to push: state %s, last_push %s; want failing and %s as before", st.State, st.LastPush, good)
	}
	tl.sell(t, card13, basket(), "")
	p.down.Store(false)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tl.c.Status(); !st.LastPush.After(good) || st.Backlog != 0 {
		t.Fatalf("after the sale was pushed: last_push %s (before %s), backlog %d", st.LastPush, good, st.Backlog)
	}
}
