package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// TestVisitorCardFetchedFromHeadOffice: store S002 receives only its home
// cards. A customer of another store shows a card its till lacks: the till
// fetches it from head office with its points, sells to it, and its
// balance agrees with head office's after the sync; the store's other till
// receives the card in its next delta. A card head office does not hold is
// ErrCardUnknown. While the last cycle got no answer the till asks at most
// once a FetchProbe (else ErrUnreachable), so a head office back is asked
// before the next cycle. A fetch waits for a running cycle (it imports
// only between cycles).
func TestVisitorCardFetchedFromHeadOffice(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	homeScope(t, h, "2900000000025")
	p := newProxy(t, h.hs.URL)
	var gate atomic.Pointer[chan struct{}] // set: feed requests wait for it to close
	p.onFeed = func(*http.Request) {
		if g := gate.Load(); g != nil {
			<-*g
		}
	}
	const probe = 300 * time.Millisecond
	a := newTillWith(t, h, p, "S002-T84", "S002", 0, func(o *client.Options) { o.FetchProbe = probe })
	b := newTill(t, h, p, "S002-T85", "S002", 0)
	syncEach(t, a, b)
	const visitor = "2900000000049"
	if hasCard(a, visitor) || hasCard(b, visitor) {
		t.Fatalf("card %s is on S002's tills before anyone asked for it", visitor)
	}

	if err := a.c.FetchCard(ctx, visitor); err != nil {
		t.Fatal(err)
	}
	if !hasCard(a, visitor) {
		t.Fatalf("card %s not on till %s after fetching it", visitor, a.id)
	}
	sameBalances(t, h, a, []string{visitor})
	if n := a.c.Status().CardsFetched; n != 1 {
		t.Errorf("status counts %d cards fetched, want 1", n)
	}
	a.sell(t, visitor, basket(), "")
	syncEach(t, a)
	sameBalances(t, h, a, []string{visitor})

	// The store's other till gets it with the deltas (once no older
	// transaction in the cluster holds the change back).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		syncEach(t, b)
		if hasCard(b, visitor) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("card %s never reached till %s of the same store", visitor, b.id)
		}
	}
	sameBalances(t, h, b, []string{visitor})

	if err := a.c.FetchCard(ctx, "2900000000099"); !errors.Is(err, client.ErrCardUnknown) {
		t.Errorf("fetching a card head office lacks: %v, want ErrCardUnknown", err)
	}

	// A fetch waits for the cycle running.
	g := make(chan struct{})
	gate.Store(&g)
	done := make(chan error, 1)
	go func() { done <- a.c.SyncNow(ctx) }()
	for !a.c.Status().Running {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := a.c.FetchCard(short, "2900000000056")
	cancel()
	if !errors.Is(err, client.ErrCycleRunning) || hasCard(a, "2900000000056") {
		t.Errorf("fetch during a cycle: %v, want ErrCycleRunning and no card", err)
	}
	gate.Store(nil)
	close(g)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Head office down: right after a cycle that got no answer the till
	// does not ask; once FetchProbe has passed it tries once more (and
	// then not again for FetchProbe); head office back, a fetch works
	// before the loop's next cycle.
	p.down.Store(true)
	if err := a.c.SyncNow(ctx); err == nil {
		t.Fatal("sync with head office down succeeded")
	}
	if err := a.c.FetchCard(ctx, "2900000000056"); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("fetch after a cycle that got no answer: %v, want ErrUnreachable", err)
	}
	time.Sleep(probe + 50*time.Millisecond)
	if err := a.c.FetchCard(ctx, "2900000000056"); err == nil || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("fetch a probe later, head office down: %v, want the link's error", err)
	}
	if err := a.c.FetchCard(ctx, "2900000000056"); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("fetch right after a probe that failed: %v, want ErrUnreachable", err)
	}
	p.down.Store(false)
	time.Sleep(probe + 50*time.Millisecond)
	if err := a.c.FetchCard(ctx, "2900000000056"); err != nil || !hasCard(a, "2900000000056") {
		t.Errorf("fetch once head office answers again, before any cycle: %v", err)
	}
}

// TestFetchedCardsFetchedAgainAfterARestore: a till of a `home` store
// fetched two customers' cards; head office is then restored from a
// backup taken before, which lost their being home to the store (and one
// card altogether), and ERP resets the till's feed. After its reload the
// till asks head office again for every card it holds, so the card is home
// once more and its later changes (a correction after the restore) reach
// the till; the card head office lost does not fail the cycle, and is asked
// for again until ERP has sent it again.
func TestFetchedCardsFetchedAgainAfterARestore(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	homeScope(t, h)
	p := newProxy(t, h.hs.URL)
	tl := newTillWith(t, h, p, "S002-T86", "S002", 0, func(o *client.Options) { o.LostRetry = time.Millisecond })
	syncEach(t, tl)
	bk := takeBackup(t, h)
	const visitor, gone = "2900000000049", "2930000000001"
	if code, data := erpCall(t, h, "POST", "/v1/erp/import", map[string]any{"version": 1,
		"cards": []map[string]string{{"code": gone, "kind": "bonus", "state": "active"}}}); code != 200 {
		t.Fatalf("import a card after the backup: %d %s", code, data)
	}
	for _, code := range []string{visitor, gone} {
		if err := tl.c.FetchCard(ctx, code); err != nil {
			t.Fatal(err)
		}
	}
	bk.restore(t, h, p)
	if sc, err := h.srv.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 0 {
		t.Fatalf("test setup: S002 after the restore: %+v, %v; want no home cards", sc, err)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	syncEach(t, tl)
	if st := tl.c.Status(); st.Resets != 1 || st.State != "ok" {
		t.Fatalf("status after the reset: %+v", st)
	}
	if sc, err := h.srv.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 1 {
		t.Fatalf("S002 after the till's reload: %+v, %v; want the fetched card home again", sc, err)
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "after-restore", Card: visitor, Points: decimal.NewFromInt(41), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	want := hoBalances(t, h)[visitor]
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		syncEach(t, tl)
		if b, err := tl.st.Spendable(ctx, visitor, demoNow); err == nil && b.Total.String() == want {
			break
		}
		if time.Now().After(deadline) {
			sameBalances(t, h, tl, []string{visitor})
			t.Fatal("the correction after the restore never reached the till")
		}
	}

	// ERP sends again what it sent since the backup: the lost card is
	// back at head office, with a lot. The till, which held it all along,
	// asks for it again and makes it home to its store once more.
	if lost, _ := tl.st.SyncState(ctx, "refetch_lost"); !strings.Contains(lost, gone) {
		t.Fatalf("cards head office lost, as the till saved them: %q, want %s", lost, gone)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/import", map[string]any{"version": 1,
		"cards": []map[string]string{{"code": gone, "kind": "bonus", "state": "active"}},
		"lots":  []map[string]string{{"id": "L-G", "card": gone, "points": "33", "accrued_at": "2026-11-20T10:00:00Z"}}}); code != 200 {
		t.Fatalf("import the lost card again: %d %s", code, data)
	}
	time.Sleep(5 * time.Millisecond) // past LostRetry
	syncEach(t, tl)
	if sc, err := h.srv.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 2 {
		t.Fatalf("S002 once the lost card is back: %+v, %v; want it home again", sc, err)
	}
	sameBalances(t, h, tl, []string{gone})
	if lost, _ := tl.st.SyncState(ctx, "refetch_lost"); lost != "" {
		t.Errorf("cards head office lost, after it has them back: %q, want none", lost)
	}
}

// TestFetchAnswerNotOvertakenByADelta: the answer to a fetch is held on its
// way to the till (head office has committed it); meanwhile ERP corrects
// the card and the till is asked to sync. The sync waits for the fetch to
// import its answer (the cycle lock), so its delta lands after it and the
// till ends with the correction. Were the delta imported first, the late
// answer would take the card back to before the correction, and no later
// delta would send the correction again.
func TestFetchAnswerNotOvertakenByADelta(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	homeScope(t, h)
	p := newProxy(t, h.hs.URL)
	answered := make(chan struct{})
	var once sync.Once
	p.slowBody = func(r *http.Request) time.Duration {
		if r.URL.Path != "/v1/till/cards" {
			return 0
		}
		once.Do(func() { close(answered) })
		return 500 * time.Millisecond
	}
	tl := newTill(t, h, p, "S002-T87", "S002", 0)
	syncEach(t, tl)
	const visitor = "2900000000049"
	fetched := make(chan error, 1)
	go func() { fetched <- tl.c.FetchCard(ctx, visitor) }()
	<-answered
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "overtake", Card: visitor, Points: decimal.NewFromInt(29), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	synced := make(chan error, 1)
	go func() { synced <- tl.c.SyncNow(ctx) }()
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	// The delta may hold the correction back while another test's
	// transaction older than it runs: later syncs then bring it.
	want := hoBalances(t, h)[visitor]
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := tl.st.Spendable(ctx, visitor, demoNow); err == nil && b.Total.String() == want {
			break
		}
		if time.Now().After(deadline) {
			sameBalances(t, h, tl, []string{visitor})
			t.Fatal("the till never got the correction made while the fetch's answer was on its way")
		}
		syncEach(t, tl)
	}
}

// TestCardFetchesTurnedOff: head office takes no card fetches
// (NoCardFetches): a till's fetch is refused (403) and writes nothing, so
// its store's tills read only their store's cards; after a feed reset the
// till does not keep asking again for the cards it holds.
func TestCardFetchesTurnedOff(t *testing.T) {
	ctx := context.Background()
	h := &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), noFetch: true}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	homeScope(t, h, "2900000000025")
	p := newProxy(t, h.hs.URL)
	tl := newTill(t, h, p, "S002-T88", "S002", 0)
	syncEach(t, tl)
	var ae *client.AnswerError
	if err := tl.c.FetchCard(ctx, "2900000000049"); !errors.As(err, &ae) || ae.Status != http.StatusForbidden || hasCard(tl, "2900000000049") {
		t.Fatalf("fetch with fetches off: %v, want head office's 403 and no card", err)
	}
	if sc, err := h.srv.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 1 {
		t.Fatalf("S002 after a refused fetch: %+v, %v; want its one home card", sc, err)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	syncEach(t, tl)
	pending, _ := tl.st.SyncState(ctx, "refetch_cards")
	if st := tl.c.Status(); st.Resets != 1 || st.RefetchError != "" || pending != "" {
		t.Errorf("after a reset with fetches off: resets %d, refetch error %q, pending %q; want the refetch given up", st.Resets, st.RefetchError, pending)
	}
	sameBalances(t, h, tl, []string{"2900000000025"})
}

// homeScope puts store S002 on the home card scope, the cards home to it.
func homeScope(t *testing.T, h *ho, cards ...string) {
	t.Helper()
	ctx := context.Background()
	if err := h.srv.SetCardScope(ctx, "S002", headoffice.ScopeHome); err != nil {
		t.Fatal(err)
	}
	if len(cards) == 0 {
		return
	}
	if _, err := h.srv.AssignCards(ctx, "S002", cards); err != nil {
		t.Fatal(err)
	}
}
