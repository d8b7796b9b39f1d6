package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// cardsTap stands between the chaos proxy and head office and watches (or
// spoils) the tills' POST /v1/till/cards: the codes of each request, and
// an answer of its own (status, body) for the n-th (from 1) when answer
// says so.
type cardsTap struct {
	target string
	mu     sync.Mutex
	asked  [][]string
	answer func(n int, codes []string, ho []byte) (int, []byte)
	hs     *httptest.Server
}

func newCardsTap(t *testing.T, target string) *cardsTap {
	k := &cardsTap{target: target}
	k.hs = httptest.NewServer(k)
	t.Cleanup(k.hs.Close)
	return k
}

func (k *cardsTap) requests() [][]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]string(nil), k.asked...)
}

func (k *cardsTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	cards := r.URL.Path == "/v1/till/cards"
	n := 0
	var codes []string
	if cards {
		var req struct{ Codes []string }
		plain := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			if z, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				plain, _ = io.ReadAll(z)
			}
		}
		json.Unmarshal(plain, &req)
		codes = req.Codes
		k.mu.Lock()
		k.asked = append(k.asked, codes)
		n = len(k.asked)
		k.mu.Unlock()
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, k.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	req.Header.Del("Accept-Encoding") // the tap reads the answer as it is
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		hangUp(w)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	status := resp.StatusCode
	if cards && k.answer != nil {
		if s, b := k.answer(n, codes, data); s != 0 {
			status, data = s, b
		}
	}
	for key, v := range resp.Header {
		if key != "Content-Length" && key != "Content-Encoding" {
			w.Header()[key] = v
		}
	}
	w.WriteHeader(status)
	w.Write(data)
}

// homeStore is head office with the demo, S002 on the home scope, a tap
// and a chaos proxy before it.
func homeStore(t *testing.T) (*ho, *cardsTap, *proxy) {
	t.Helper()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	homeScope(t, h)
	k := newCardsTap(t, h.hs.URL)
	return h, k, newProxy(t, k.hs.URL)
}

func homeOf(t *testing.T, h *ho, storeID, card string) bool {
	t.Helper()
	var n int
	if err := h.srv.DB().QueryRow(context.Background(), `SELECT count(*) FROM card_stores WHERE store_id = $1 AND card = $2`, storeID, card).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// loseHome undoes the cards' being home to the store at head office, as a
// restore from a backup taken before does.
func loseHome(t *testing.T, h *ho, storeID string, cards ...string) {
	t.Helper()
	if _, err := h.srv.DB().Exec(context.Background(), `DELETE FROM card_stores WHERE store_id = $1 AND card = ANY($2)`, storeID, cards); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentFetchesOfOneCard: the cashier's lookup and quote of one
// visitor card at once on one till, and the store's other till asking for
// it at the same moment: every fetch succeeds, head office makes the card
// home once (one change row), and both tills hold head office's balance,
// then still after selling to it and syncing.
func TestConcurrentFetchesOfOneCard(t *testing.T) {
	ctx := context.Background()
	h, _, p := homeStore(t)
	a := newTill(t, h, p, "S002-T61", "S002", 0)
	b := newTill(t, h, p, "S002-T62", "S002", 0)
	syncEach(t, a, b)
	const visitor = "2900000000049"
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, tl := range []*till{a, a, a, b, b, b} {
		wg.Go(func() {
			if err := tl.c.FetchCard(ctx, visitor); err != nil {
				errs <- fmt.Errorf("till %s: %w", tl.id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := h.srv.DB().QueryRow(ctx, `SELECT count(*) FROM changes WHERE section = 'home/S002' AND key = $1`, visitor).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d home/S002 change rows of %s after six fetches at once, want 1", n, visitor)
	}
	sameBalances(t, h, a, []string{visitor})
	sameBalances(t, h, b, []string{visitor})
	a.sell(t, visitor, basket(), "")
	b.sell(t, visitor, powder("1"), "")
	syncEach(t, a, b)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		syncEach(t, a, b)
		want := hoBalances(t, h)[visitor]
		ba, _ := a.st.Spendable(ctx, visitor, demoNow)
		bb, _ := b.st.Spendable(ctx, visitor, demoNow)
		if ba.Total.String() == want && bb.Total.String() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after both tills sold to %s: tills %s and %s, head office %s", visitor, ba.Total, bb.Total, want)
		}
	}
}

// TestManyCardsFetchedAtOnceByTwoTills: two tills of a home store fetch
// the same 40 cards in opposite orders at once (no deadlock, each made
// home once), then each holds head office's balance of every one.
func TestManyCardsFetchedAtOnceByTwoTills(t *testing.T) {
	ctx := context.Background()
	h, _, p := homeStore(t)
	cards := make([]map[string]any, 40)
	codes := make([]string, 40)
	for i := range cards {
		codes[i] = fmt.Sprintf("29100000%05d", i)
		cards[i] = map[string]any{"code": codes[i], "kind": "bonus", "state": "active"}
	}
	lots := make([]map[string]any, 40)
	for i := range lots {
		lots[i] = map[string]any{"id": fmt.Sprintf("QA-%d", i), "card": codes[i], "points": fmt.Sprint(10 + i), "accrued_at": "2026-11-01T00:00:00Z",
			"active_from": "2026-11-01T00:00:00Z", "expires_at": "2027-05-01T00:00:00Z"}
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/import", map[string]any{"version": 1, "cards": cards, "lots": lots}); code != 200 {
		t.Fatalf("import: %d %s", code, data)
	}
	a := newTill(t, h, p, "S002-T63", "S002", 0)
	b := newTill(t, h, p, "S002-T64", "S002", 0)
	syncEach(t, a, b)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i, tl := range []*till{a, b} {
		wg.Go(func() {
			for j := range codes {
				code := codes[j]
				if i == 1 {
					code = codes[len(codes)-1-j]
				}
				if err := tl.c.FetchCard(ctx, code); err != nil {
					failed.Add(1)
					t.Errorf("till %s fetching %s: %v", tl.id, code, err)
				}
			}
		})
	}
	wg.Wait()
	sc, err := h.srv.StoreCardScope(ctx, "S002")
	if err != nil || sc.HomeCards != 40 {
		t.Errorf("S002 after the fetches: %+v, %v; want 40 home cards", sc, err)
	}
	sameBalances(t, h, a, codes)
	sameBalances(t, h, b, codes)
}

// TestFetchRacingCorrections: while a till fetches a visitor's card, ERP
// corrects it again and again. Whatever the interleaving, once the till
// syncs it shows head office's balance (the fetch never leaves it with an
// older state than a later delta would).
func TestFetchRacingCorrections(t *testing.T) {
	ctx := context.Background()
	h, _, p := homeStore(t)
	visitors := []string{"2900000000018", "2900000000049", "2900000000056", "2900000000025"}
	tl := newTill(t, h, p, "S002-T65", "S002", 0)
	syncEach(t, tl)
	for i, v := range visitors {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: fmt.Sprintf("qa-race-%d-%d", i, j), Card: v, Points: decimal.NewFromInt(int64(j%7 + 1)), Reason: "qa"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		time.Sleep(5 * time.Millisecond)
		err := tl.c.FetchCard(ctx, v)
		time.Sleep(5 * time.Millisecond)
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("fetch %s: %v", v, err)
		}
	}
	want := hoBalances(t, h)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		syncEach(t, tl)
		off := []string{}
		for _, v := range visitors {
			if b, err := tl.st.Spendable(ctx, v, demoNow); err != nil || b.Total.String() != want[v] {
				off = append(off, fmt.Sprintf("%s till %s head office %s", v, b.Total, want[v]))
			}
		}
		if len(off) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the corrections, synced: %v", off)
		}
	}
}

// TestFetchCutOrLate: the answer to a fetch is lost after head office
// made the card home, or arrives after the cashier's wait, or head office
// hangs: the fetch fails within the caller's ctx, the till has no card and
// is otherwise unchanged, its next cycle works and brings the card (home to
// the store now), and a later fetch of another card works.
func TestFetchCutOrLate(t *testing.T) {
	ctx := context.Background()
	h, _, p := homeStore(t)
	tl := newTill(t, h, p, "S002-T66", "S002", 0)
	syncEach(t, tl)
	const slow = "2900000000049"
	p.slowBody = func(r *http.Request) time.Duration {
		if r.URL.Path == "/v1/till/cards" {
			return 2 * time.Second
		}
		return 0
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	err := tl.c.FetchCard(short, slow)
	cancel()
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("fetch whose answer trickles past the wait: %v after %s, want an error within the wait", err, time.Since(start))
	}
	if hasCard(tl, slow) {
		t.Fatalf("card %s on the till after a fetch that failed", slow)
	}
	if !homeOf(t, h, "S002", slow) {
		t.Fatalf("test setup: head office did not make %s home before its answer was cut", slow)
	}
	p.slowBody = nil
	for deadline := time.Now().Add(20 * time.Second); !hasCard(tl, slow); time.Sleep(50 * time.Millisecond) {
		syncEach(t, tl)
		if time.Now().After(deadline) {
			t.Fatalf("card %s, made home by a fetch whose answer was lost, never came with a delta", slow)
		}
	}
	sameBalances(t, h, tl, []string{slow})

	p.hang.Store(true)
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	err = tl.c.FetchCard(short, "2900000000056")
	cancel()
	p.hang.Store(false)
	if err == nil || hasCard(tl, "2900000000056") {
		t.Fatalf("fetch from a hanging head office: %v", err)
	}
	if st := tl.c.Status(); st.Unreachable() {
		t.Errorf("a fetch that failed marked the till unreachable: %+v", st)
	}
	if err := tl.c.FetchCard(ctx, "2900000000056"); err != nil {
		t.Fatalf("fetch after head office answers again: %v", err)
	}
	syncEach(t, tl)
	if st := tl.c.Status(); st.State != "ok" || st.RejectedCount != 0 {
		t.Errorf("status after the failed fetches: %+v", st)
	}
	sameBalances(t, h, tl, []string{slow, "2900000000056"})
}

// TestFetchDuringFirstLoad: a till of an `all` store is cut off in the
// middle of its paged first load; a card from a page not yet loaded is
// fetched in between (the cashier scans it). The load then goes on and
// every card ends with head office's balance, nothing held back.
func TestFetchDuringFirstLoad(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	var feeds atomic.Int32
	p.onFeed = func(*http.Request) {
		if feeds.Add(1) == 2 {
			p.down.Store(true)
		}
	}
	tl := newTillWith(t, h, p, "S001-T67", "S001", 0, func(o *client.Options) { o.FetchProbe = time.Millisecond })
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("first load with head office gone after a page succeeded")
	}
	p.down.Store(false)
	p.onFeed = nil
	time.Sleep(5 * time.Millisecond)
	const late = "2900000000056"
	if hasCard(tl, late) {
		t.Fatalf("test setup: %s loaded already", late)
	}
	if err := tl.c.FetchCard(ctx, late); err != nil {
		t.Fatalf("fetch during the first load: %v", err)
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "qa-firstload", Card: late, Points: decimal.NewFromInt(12), Reason: "qa"}); err != nil {
		t.Fatal(err)
	}
	syncEach(t, tl)
	syncEach(t, tl)
	var all []string
	for c := range hoBalances(t, h) {
		all = append(all, c)
	}
	sameBalances(t, h, tl, all)
	if st := tl.c.Status(); st.State != "ok" || st.RejectedCount != 0 {
		t.Errorf("status after the first load: %+v", st)
	}
}

// TestFetchBeforeAnyLoad: a new till of a home store, whose first load
// has not run (no catalog), is asked for a visitor's card: the fetch fails
// (its kind is not known yet) and says the first load has not run, not
// that head office refused; the first load then brings the card whole
// (head office made it home) and nothing stays held back.
func TestFetchBeforeAnyLoad(t *testing.T) {
	ctx := context.Background()
	h, _, p := homeStore(t)
	tl := newTill(t, h, p, "S002-T68", "S002", 0)
	const visitor = "2900000000018"
	if err := tl.c.FetchCard(ctx, visitor); !errors.Is(err, client.ErrNotLoaded) {
		t.Errorf("fetch before any load: %v, want ErrNotLoaded", err)
	}
	syncEach(t, tl)
	syncEach(t, tl)
	sameBalances(t, h, tl, []string{visitor})
	if st := tl.c.Status(); st.State != "ok" || st.RejectedCount != 0 {
		t.Errorf("status after the first load that followed a fetch: rejected %d %+v", st.RejectedCount, st.Rejected)
	}
}

// TestFetchWhileFirstLoadRuns: a cashier scans a card the replica lacks
// while the till's first load is running (held on its first page here):
// the fetch does not wait for the load (minutes, hours on a slow link)
// but answers at once that the load has not finished; the load then
// brings the card.
func TestFetchWhileFirstLoadRuns(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("snapshot") == "1" {
			select {
			case held <- struct{}{}:
				<-hold
			default:
			}
		}
	}
	tl := newTill(t, h, p, "S001-T70", "S001", 0)
	loaded := make(chan error, 1)
	go func() { loaded <- tl.c.SyncNow(ctx) }()
	<-held
	const card = "2900000000056"
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := tl.c.FetchCard(fctx, card)
	if !errors.Is(err, client.ErrNotLoaded) || fctx.Err() != nil {
		t.Errorf("fetch while the first load runs: %v (waited: %v), want ErrNotLoaded at once", err, fctx.Err())
	}
	close(hold)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, tl, []string{card})
}

// TestHostileCardAnswerLeavesNothingBehind: head office (or something
// in between) answers a fetch with a record of another kind that does not
// decode. The till must refuse the answer; what it must not do is keep
// that record held back for good (no feed ever sends it again), which
// shows in its status as feed records rejected.
func TestHostileCardAnswerLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	h, k, p := homeStore(t)
	tl := newTill(t, h, p, "S002-T69", "S002", 0)
	syncEach(t, tl)
	k.answer = func(n int, codes []string, ho []byte) (int, []byte) {
		return 200, bytes.Replace(ho, []byte(`"replica":{`), []byte(`"replica":{"programs":[{"id":"EVIL","bogus":1}],`), 1)
	}
	ferr := tl.c.FetchCard(ctx, "2900000000049")
	k.answer = nil
	syncEach(t, tl)
	syncEach(t, tl)
	if st := tl.c.Status(); st.RejectedCount != 0 {
		t.Errorf("after a card answer carrying a program that does not decode (fetch: %v), synced twice: %d feed records held back: %+v",
			ferr, st.RejectedCount, st.Rejected)
	}
}

// TestRefetchResumesAndStopsOnAllStore: a home store's till holding
// 1,200 cards asks again for them after a reset, 1,000 a request; the
// second request fails: the cycle fails and says so, the position is
// saved after the first, and the next cycle asks only for the rest. An
// `all` store's till asks once.
func TestRefetchResumesAndStopsOnAllStore(t *testing.T) {
	ctx := context.Background()
	h, k, p := homeStore(t)
	cards := make([]map[string]any, 1200)
	codes := make([]string, len(cards))
	for i := range cards {
		codes[i] = fmt.Sprintf("2920000%06d", i)
		cards[i] = map[string]any{"code": codes[i], "kind": "bonus", "state": "active"}
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/import", map[string]any{"version": 1, "cards": cards}); code != 200 {
		t.Fatalf("import: %d %s", code, data)
	}
	if _, err := h.srv.AssignCards(ctx, "S002", codes); err != nil {
		t.Fatal(err)
	}
	big := func(o *client.Options) { o.SnapshotPage, o.DeltaPage, o.BatchSize = 5000, 5000, 100 }
	tl := newTillWith(t, h, p, "S002-T71", "S002", 0, big)
	syncEach(t, tl)
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	k.answer = func(n int, codes []string, ho []byte) (int, []byte) {
		if n == 2 {
			return http.StatusServiceUnavailable, []byte(`{"error":"qa: down for a moment"}`)
		}
		return 0, nil
	}
	// The feed came in: the cycle succeeds, the refetch's failure shown.
	err := tl.c.SyncNow(ctx)
	if st := tl.c.Status(); err != nil || !strings.Contains(st.RefetchError, "fetch again") {
		t.Errorf("cycle whose second refetch request failed: %v, refetch error %q; want the cycle ok, the failure shown", err, st.RefetchError)
	}
	saved, _ := tl.st.SyncState(ctx, "refetch_cards")
	reqs := k.requests()
	if len(reqs) != 2 || len(reqs[0]) != 1000 || !strings.Contains(saved, reqs[0][999]) {
		t.Fatalf("after the failed second request: %d requests (sizes %v), saved %q", len(reqs), sizes(reqs), saved)
	}
	k.answer = nil
	syncEach(t, tl)
	reqs = k.requests()
	if len(reqs) != 3 || reqs[2][0] <= reqs[0][999] {
		t.Errorf("the cycle after: %d requests, the third starting at %q; want one more, after %q", len(reqs), reqs[len(reqs)-1][0], reqs[0][999])
	}
	if saved, _ := tl.st.SyncState(ctx, "refetch_cards"); saved != "" {
		t.Errorf("refetch still pending after it went through: %q", saved)
	}
	syncEach(t, tl)
	if n := len(k.requests()); n != 3 {
		t.Errorf("%d fetch requests after one more cycle, want 3 (done)", n)
	}

	// An `all` store: the reload brought every card, one request ends it.
	a := newTillWith(t, h, p, "S001-T72", "S001", 0, big)
	syncEach(t, a)
	before := len(k.requests())
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+a.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	syncEach(t, a)
	syncEach(t, a)
	if n := len(k.requests()) - before; n != 1 {
		t.Errorf("an all store's till after a reset: %d fetch requests, want 1", n)
	}
}

// TestOldHeadOfficeWithoutTheRoute: head office runs a build without
// POST /v1/till/cards (plain 404). A fetch fails saying so; after a reset
// the refetch fails every cycle (the feed comes in: the till is not
// unreachable).
func TestOldHeadOfficeWithoutTheRoute(t *testing.T) {
	ctx := context.Background()
	h, k, p := homeStore(t)
	k.answer = func(int, []string, []byte) (int, []byte) { return 404, []byte("404 page not found\n") }
	tl := newTill(t, h, p, "S002-T73", "S002", 0)
	syncEach(t, tl)
	err := tl.c.FetchCard(ctx, "2900000000049")
	var ae *client.AnswerError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("fetch from a head office without the route: %v, want its 404", err)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	var errs []error
	for range 3 {
		errs = append(errs, tl.c.SyncNow(ctx))
	}
	st := tl.c.Status()
	t.Logf("three cycles after a reset against a head office without the route: %v; failures %d, unreachable %v", errs, st.Failures, st.Unreachable())
	if st.Unreachable() || !strings.Contains(st.RefetchError, "404") {
		t.Errorf("the till counts as unreachable (%v) though its feed came in, or does not show the refetch's failure (%q)", st.Unreachable(), st.RefetchError)
	}
	if errs[2] != nil || st.State != "ok" {
		t.Errorf("a head office without the card route: every cycle after the reset fails (%d failures in a row, state %q, the loop backing off); want the refetch given up or skipped once head office says it has no such route", st.Failures, st.State)
	}
}

func sizes(reqs [][]string) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, len(r))
	}
	return out
}
