package headoffice

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// TestSnapshotCacheGivesTheTillsOwnSnapshot: first-load pages given from
// the cache hold exactly what the same page read without it holds at that
// moment, while ERP changes cards, adds lots and cards inside cached
// pages' ranges and tills fold accruals and redemptions — among them the
// asking till's own, which its page must carry with its watermark. Head
// office with the cache and one without share the database; every page
// is asked of both, one after the other.
func TestSnapshotCacheGivesTheTillsOwnSnapshot(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	open := func(cache int64) *Server {
		s, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret", Clock: func() time.Time { return demoNow }, SnapshotCacheBytes: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	cached, plain := open(0), open(-1)
	r := demoReplica(t)
	const cards = 60
	code := func(i int) string { return fmt.Sprintf("37%011d", i) }
	for i := range cards {
		if i%7 == 3 {
			continue // room for cards ERP adds later, inside the pages
		}
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code(i), Kind: "bonus", State: checkout.StateActive})
		for k := range 2 {
			r.Lots = append(r.Lots, lot(code(i), fmt.Sprintf("L%d-%d", i, k), "50", demoNow.AddDate(0, -1, 0), nil))
		}
	}
	if _, err := cached.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	tills := []*lateTill{{till: "S001-T01"}, {till: "S001-T02"}, {till: "S001-T03"}}
	held := map[string]string{} // the watermark each till holds
	for _, lt := range tills {
		if _, err := cached.Enrol(ctx, lt.till, "S001"); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(6, 7))
	pages := []string{"", code(9), code(19), code(29), code(39), code(49)}
	const limit = 10
	var asked, changes int
	for round := range 300 {
		switch op := rng.IntN(10); {
		case op < 3:
			i := rng.IntN(cards)
			upd := &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: code(i), Kind: "bonus", State: checkout.StateActive,
				Holder: fmt.Sprint("holder ", round)}},
				Lots: []store.ReplicaLot{lot(code(i), fmt.Sprint("E", round), "5", demoNow.AddDate(0, 0, -1), nil)}}
			if _, err := cached.Import(ctx, upd); err != nil {
				t.Fatal(err)
			}
			changes++
		case op < 6:
			lt := tills[rng.IntN(len(tills))]
			i := rng.IntN(cards)
			if i%7 == 3 {
				i-- // a card ERP may not have added yet
			}
			e := store.Entry{CardCode: code(i), Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700, CreatedAt: demoNow,
				Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}}
			if op == 5 {
				e = spendFrom(code(i), fmt.Sprintf("L%d-0", i), "", "1")
			}
			wantStatuses(t, "push", lt.push(t, cached, e), wire.Applied)
			changes++
		default:
			lt := tills[rng.IntN(len(tills))]
			req := SnapshotRequest{After: pages[rng.IntN(len(pages))], Limit: limit}
			if rng.IntN(3) > 0 {
				w := held[lt.till]
				req.Folded = &w
			}
			got, err := cached.SnapshotPage(ctx, lt.till, req)
			if err != nil {
				t.Fatal(err)
			}
			// The page without the cache over the same range: a cached
			// page keeps the range it was read with, though cards were
			// added in it since.
			var n int
			q, args := `SELECT count(*) + 1 FROM cards WHERE code > $1`, []any{req.After}
			if got.More {
				q, args = `SELECT count(*) FROM cards WHERE code > $1 AND code <= $2`, []any{req.After, got.Next}
			}
			if err := plain.db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
				t.Fatal(err)
			}
			preq := req
			preq.Limit = n
			want, err := plain.SnapshotPage(ctx, lt.till, preq)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cursor == "" {
				t.Fatalf("round %d: a page without a cursor", round)
			}
			if g, w := pageText(t, got), pageText(t, want); g != w {
				t.Fatalf("round %d, till %s, page after %q (folded %v): from the cache\n%s\nwant\n%s", round, lt.till, req.After, req.Folded, g, w)
			}
			if req.Folded != nil {
				held[lt.till] = got.Replica.FoldedThrough[lt.till]
			}
			asked++
		}
	}
	hits := cached.pages.hits.Load()
	t.Logf("%d pages asked, %d from the cache, %d cards read again, %d changes", asked, hits, cached.pages.refreshed.Load(), changes)
	if hits < int64(asked)/2 || cached.pages.refreshed.Load() == 0 {
		t.Errorf("%d of %d pages from the cache, %d cards read again: the test did not exercise it", hits, asked, cached.pages.refreshed.Load())
	}
	if plain.pages != nil {
		t.Error("SnapshotCacheBytes -1 still caches")
	}
}

// pageText is a page's content in a fixed order: cards by code, lots by
// card and id, as JSON, without the moment it was read or its cursor
// (the xmin of the whole cluster, which other tests' transactions move).
func pageText(t *testing.T, f *wire.Feed) string {
	t.Helper()
	r := *f.Replica
	r.AsOf = nil
	r.Cards = slices.Clone(r.Cards)
	slices.SortFunc(r.Cards, func(a, b store.ReplicaCard) int { return cmp.Compare(a.Code, b.Code) })
	r.Lots = slices.Clone(r.Lots)
	slices.SortFunc(r.Lots, func(a, b store.ReplicaLot) int { return cmp.Or(cmp.Compare(a.Card, b.Card), cmp.Compare(a.ID, b.ID)) })
	b, err := json.MarshalIndent(struct {
		Next    string
		More    bool
		Replica store.Replica
	}{f.Next, f.More, r}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPageCacheRules: a page is kept from its second read within the
// age, and given while young enough, not to a
// snapshot whose xmin is below the page's, nor from before the change
// log's horizon; the later read of a page is kept; the pages used longest
// ago go first beyond the byte bound, and a page bigger than it is not
// kept.
func TestPageCacheRules(t *testing.T) {
	page := func(n int) ([]store.ReplicaCard, []store.ReplicaLot) {
		cs := make([]store.ReplicaCard, n)
		for i := range cs {
			cs[i].Code = fmt.Sprint(i)
		}
		return cs, nil
	}
	one := pageBytes(page(100))
	c := newPageCache(3*one, time.Hour)
	k := func(after string) pageKey { return pageKey{after, 100} }
	ctx := context.Background()
	cached := func(c *pageCache, a string) *cachedPage {
		p, read := c.lookup(ctx, k(a))
		c.done(k(a), read)
		return p
	}
	cs, ls := page(100)
	c.put(k("a"), nil, 500, cs, ls, "z")
	if cached(c, "a") != nil || c.heldBytes() != 0 {
		t.Fatal("a page read once was kept")
	}
	c.put(k("a"), nil, 500, cs, ls, "z")
	p := cached(c, "a")
	if p == nil || p.last != "z" || !c.usable(p, 600, 0) {
		t.Fatalf("a page cached is not given: %+v", p)
	}
	if c.usable(p, 600, 501) {
		t.Error("a page from before the change log's horizon was given")
	}
	if c.usable(p, 499, 0) {
		t.Error("a page whose xmin is past the asking snapshot's was given")
	}
	if cached(c, "b") != nil || c.usable(nil, 600, 0) {
		t.Error("a page never read was given")
	}
	if h, m := c.hits.Load(), c.misses.Load(); h != 1 || m != 3 {
		t.Errorf("%d hits %d misses counted, want 1 and 3", h, m)
	}

	// An older read does not replace a later one.
	c.put(k("a"), nil, 400, cs, ls, "y")
	if p := cached(c, "a"); p == nil || p.xmin != 500 {
		t.Errorf("an older read replaced the later one: %+v", p)
	}

	// Beyond three pages the one used longest ago goes.
	twice := func(c *pageCache, a string) {
		c.put(k(a), nil, 500, cs, ls, "")
		c.put(k(a), nil, 500, cs, ls, "")
	}
	twice(c, "b")
	twice(c, "c")
	cached(c, "a") // a used last: b is the oldest now
	twice(c, "d")
	for a, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := cached(c, a) != nil; got != want {
			t.Errorf("page %s kept %v, want %v", a, got, want)
		}
	}
	if c.heldBytes() != 3*one {
		t.Errorf("holds %d bytes, want %d", c.heldBytes(), 3*one)
	}
	big, _ := page(400)
	c.put(k("e"), nil, 500, big, nil, "")
	c.put(k("e"), nil, 500, big, nil, "")
	if cached(c, "e") != nil || c.heldBytes() != 3*one {
		t.Errorf("a page bigger than the bound was kept (%d bytes held)", c.heldBytes())
	}

	young := newPageCache(0, time.Millisecond)
	twice(young, "a")
	time.Sleep(5 * time.Millisecond)
	if cached(young, "a") != nil || young.heldBytes() != 0 {
		t.Error("a page older than the age was given or kept")
	}
	young.put(k("b"), nil, 500, cs, ls, "")
	time.Sleep(5 * time.Millisecond)
	young.put(k("b"), nil, 500, cs, ls, "")
	if cached(young, "b") != nil {
		t.Error("a page read twice further apart than the age was kept")
	}
	if newPageCache(-1, 0) != nil {
		t.Error("a negative bound made a cache")
	}
}

// TestSnapshotCacheUnderConcurrentFolding: while a till's accruals are
// folded batch after batch, pages asked for it at the same time, from the
// cache or not, each hold the lots of exactly its entries up to the
// watermark the page carries, on every card the page holds: a page read
// in a snapshot newer than the till's would hold lots past the watermark
// (counted twice on the till), one older without the cards changed since
// would miss some (counted nowhere).
func TestSnapshotCacheUnderConcurrentFolding(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	r := demoReplica(t)
	const cards = 40
	code := func(i int) string { return fmt.Sprintf("38%011d", i) }
	for i := range cards {
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code(i), Kind: "bonus", State: checkout.StateActive})
		r.Lots = append(r.Lots, lot(code(i), fmt.Sprint("L", i), "50", demoNow.AddDate(0, -1, 0), nil))
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	lt := &lateTill{}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	cardOf := map[string]string{} // the till's entries pushed or being pushed
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(8, 9))
		for range 150 {
			var es []store.Entry
			for range 1 + rng.IntN(3) {
				es = append(es, store.Entry{CardCode: code(rng.IntN(cards)), Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700,
					CreatedAt: demoNow, Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}})
			}
			b := lt.batch(es...)
			mu.Lock()
			for _, e := range b.Entries {
				cardOf[e.ID] = e.CardCode
			}
			mu.Unlock()
			if _, err := s.Ingest(ctx, b); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var pages atomic.Int64
	for g := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(10, uint64(g)))
			for {
				select {
				case <-done:
					return
				default:
				}
				after := []string{"", code(9), code(19), code(29)}[rng.IntN(4)]
				none := ""
				f, err := s.SnapshotPage(ctx, "S001-T01", SnapshotRequest{After: after, Limit: 10, Folded: &none})
				if err != nil {
					t.Error(err)
					return
				}
				pages.Add(1)
				wm := f.Replica.FoldedThrough["S001-T01"]
				got := map[string][]string{} // card → the till's lots on it
				for _, c := range f.Replica.Cards {
					got[c.Code] = nil
				}
				for _, l := range f.Replica.Lots {
					if l.ID > "S001-T01-" && l.ID < "S001-T01-~" {
						got[l.Card] = append(got[l.Card], l.ID)
					}
				}
				want := map[string][]string{}
				mu.Lock()
				for id, c := range cardOf {
					if _, in := got[c]; in && id <= wm {
						want[c] = append(want[c], id)
					}
				}
				mu.Unlock()
				for c := range got {
					slices.Sort(got[c])
					slices.Sort(want[c])
					if !slices.Equal(got[c], want[c]) {
						t.Errorf("page after %q with watermark %s: card %s holds the till's lots %v, want %v", after, wm, c, got[c], want[c])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d pages, %d from the cache, %d cards read again", pages.Load(), s.pages.hits.Load(), s.pages.refreshed.Load())
	if s.pages.hits.Load() == 0 || s.pages.refreshed.Load() == 0 {
		t.Error("no page came from the cache with cards read again: the test did not exercise it")
	}
}

// TestPageBeingReadIsWaitedFor: a till asking for a page another's read
// is reading waits for it and is given it, kept because it waited (the
// page's first read); one whose request ends meanwhile stops waiting.
func TestPageBeingReadIsWaitedFor(t *testing.T) {
	ctx := context.Background()
	c := newPageCache(0, time.Hour)
	k := pageKey{"a", 100}
	if p, read := c.lookup(ctx, k); p != nil || read == nil {
		t.Fatalf("first lookup: %v %v, want a read to do", p, read)
	}
	read := c.reading[k]
	type got struct {
		p    *cachedPage
		read *pageRead
	}
	waited := make(chan got, 1)
	go func() {
		p, r := c.lookup(ctx, k)
		waited <- got{p, r}
	}()
	gone, cancel := context.WithCancel(ctx)
	left := make(chan got, 1)
	go func() {
		p, r := c.lookup(gone, k)
		left <- got{p, r}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		w := read.wanted
		c.mu.Unlock()
		if w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no lookup waits for the read")
		}
	}
	cancel()
	if g := <-left; g.p != nil || g.read != nil {
		t.Errorf("a request gone while waiting: %+v", g)
	}
	select {
	case g := <-waited:
		t.Fatalf("did not wait for the read: %+v", g)
	case <-time.After(20 * time.Millisecond):
	}
	c.put(k, read, 500, make([]store.ReplicaCard, 3), nil, "")
	c.done(k, read)
	if g := <-waited; g.p == nil || g.read != nil {
		t.Errorf("after the read: %+v, want the page", g)
	}
	if len(c.reading) != 0 {
		t.Errorf("reads left: %v", c.reading)
	}
}

// TestConcurrentTillsReadAPageOnce: tills asking for the same page at once
// read it from the database once; the rest are given it.
func TestConcurrentTillsReadAPageOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	r := demoReplica(t)
	for i := range 30 {
		code := fmt.Sprintf("39%011d", i)
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		r.Lots = append(r.Lots, lot(code, fmt.Sprint("L", i), "50", demoNow.AddDate(0, -1, 0), nil))
	}
	if _, err := s.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	const tills = 12
	for i := range tills {
		if _, err := s.Enrol(ctx, fmt.Sprintf("S001-T%02d", i+1), "S001"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	pages := make([]*wire.Feed, tills)
	for i := range tills {
		wg.Go(func() {
			f, err := s.SnapshotPage(ctx, fmt.Sprintf("S001-T%02d", i+1), SnapshotRequest{After: "3900000000009", Limit: 10})
			if err != nil {
				t.Error(err)
			}
			pages[i] = f
		})
	}
	wg.Wait()
	if h, m := s.pages.hits.Load(), s.pages.misses.Load(); m+h != tills || m < 1 {
		t.Fatalf("%d hits %d misses of %d pages", h, m, tills)
	} else if m > 1 {
		// Every till but one waits for the first read, unless it arrived
		// after that read ended and found the page kept: a hit too.
		t.Errorf("%d tills read the page from the database, want 1", m)
	}
	for i, f := range pages[1:] {
		if f != nil && pageText(t, f) != pageText(t, pages[0]) {
			t.Errorf("till %d's page differs", i+2)
		}
	}
}

// cursorOut is a feed's cursor field, first in its encoding, replaced by
// anyCursor.
var (
	cursorOut = regexp.MustCompile(`^\{"cursor":"[^"]*",`)
	anyCursor = []byte(`{"cursor":"1",`)
)

// TestPackedPagesAreThePages: a cached page sent packed over HTTP (its
// cards and lots compressed once, between gzip members of the rest)
// unpacks to exactly the bytes the page has without the cache: with and
// without the till's folded cards from outside the page, with the catalog
// on the first page, on the last page, and after a card of the page was
// changed (that page is read again, not packed; the next one is packed
// again). Content-Length is the bytes sent.
func TestPackedPagesAreThePages(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	open := func(cache int64) *Server {
		s, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret", Clock: func() time.Time { return demoNow }, SnapshotCacheBytes: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	cached, plain := open(0), open(-1)
	r := demoReplica(t)
	exp := demoNow.AddDate(1, 0, 0)
	for i := range 25 {
		code := fmt.Sprintf("38%011d", i)
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive, Holder: fmt.Sprint("Holder ", i)})
		for k := range i % 3 {
			r.Lots = append(r.Lots, lot(code, fmt.Sprintf("L%d-%d", i, k), fmt.Sprint(10+i), demoNow.AddDate(0, -1, -i), &exp))
		}
	}
	if _, err := cached.Import(ctx, r); err != nil {
		t.Fatal(err)
	}
	const till = "S001-T01"
	secret, err := cached.Enrol(ctx, till, "S001")
	if err != nil {
		t.Fatal(err)
	}
	// Folded cards of the till's: one in the demo's range, one of the
	// 38… range, which pages of other ranges carry as well.
	lt := &lateTill{till: till}
	for _, card := range []string{demoCard, "3800000000007"} {
		wantStatuses(t, "push", lt.push(t, cached, store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700,
			CreatedAt: demoNow, Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}}), wire.Applied)
	}
	settled(t, cached)
	hs := httptest.NewServer(cached.Handler())
	t.Cleanup(hs.Close)
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}} // the gzip members as sent
	get := func(after string, folded bool) (body []byte, packed bool) {
		t.Helper()
		q := url.Values{"snapshot": {"1"}, "after": {after}, "limit": {"10"}}
		if folded {
			q.Set("folded", "")
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/till/feed?"+q.Encode(), nil)
		req.SetBasicAuth(till, secret)
		req.Header.Set("Accept-Encoding", "gzip")
		before := cached.pages.packs.Load()
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sent, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("page after %q: %s %v %s", after, resp.Status, err, sent)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(sent)) {
			t.Errorf("page after %q: Content-Length %s, %d bytes sent", after, cl, len(sent))
		}
		packed = cached.pages.packs.Load() > before
		if resp.Header.Get("Content-Encoding") != "gzip" {
			return sent, packed // under a kilobyte, from its second read, packed
		}
		zr, err := gzip.NewReader(bytes.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("page after %q does not unpack: %v", after, err)
		}
		return body, packed
	}
	encoded := func(s *Server, after string, folded bool) []byte {
		t.Helper()
		req := SnapshotRequest{After: after, Limit: 10}
		if folded {
			req.Folded = new(string)
		}
		f, err := s.SnapshotPage(ctx, till, req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	decode := func(b []byte) *wire.Feed {
		t.Helper()
		f, err := wire.DecodeFeed(b)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// exact: the page's bytes are the page's without the cache (not so
	// once a card was read again: the page holds it last). The cursor,
	// made of the database cluster's xids, moves with the tests running
	// beside this one, and is set to one.
	check := func(after string, folded, wantPacked, exact bool) *wire.Feed {
		t.Helper()
		got, packed := get(after, folded)
		got = cursorOut.ReplaceAll(got, anyCursor)
		w := cursorOut.ReplaceAll(encoded(plain, after, folded), anyCursor)
		if g, w := pageText(t, decode(got)), pageText(t, decode(w)); g != w {
			t.Fatalf("page after %q (folded %v, packed %v):\n%s\nwant\n%s", after, folded, packed, g, w)
		}
		if exact && string(got) != string(w) {
			t.Fatalf("page after %q (folded %v, packed %v):\n%s\nwant\n%s", after, folded, packed, got, w)
		}
		if packed {
			// As the page encodes unpacked (a hit as well, counted).
			if w := cursorOut.ReplaceAll(encoded(cached, after, folded), anyCursor); string(got) != string(w) {
				t.Fatalf("packed page after %q (folded %v):\n%s\nunpacked\n%s", after, folded, got, w)
			}
		}
		if packed != wantPacked {
			t.Errorf("page after %q (folded %v): packed %v, want %v", after, folded, packed, wantPacked)
		}
		return decode(got)
	}
	var pages []string
	for after, n := "", 0; ; n++ {
		check(after, false, false, true) // read, not kept
		check(after, true, false, true)  // read again: kept
		check(after, true, true, true)
		f := check(after, false, true, true)
		pages = append(pages, after)
		if !f.More {
			if n < 2 {
				t.Fatalf("%d pages: the test wants at least three", n+1)
			}
			break
		}
		after = f.Next
	}
	// A card of the second page changes: read again for the next till,
	// which keeps the page so; then packed again.
	if _, err := cached.Correct(ctx, Correction{ID: "qa-packed", Card: "3800000000002", Points: dec("3"), Reason: "qa"}); err != nil {
		t.Fatal(err)
	}
	settled(t, cached)
	var second string
	for _, after := range pages {
		if after < "3800000000002" {
			second = after
		}
	}
	check(second, true, false, false)
	check(second, true, true, false)
	check(second, false, true, false)
}

// settled waits until no transaction of the database cluster is older
// than s's last change: a snapshot's xmin is the cluster's, and another
// test's transaction running beside this one (in its own schema) would
// have a page read with an xmin below that change, which the page's next
// till then reads again (correct, but not packed).
func settled(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var past bool
		err := s.db.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) > (SELECT max(xid) FROM changes)`).Scan(&past)
		if err != nil {
			t.Fatalf("wait for the cluster's transactions to pass the last change: %v", err)
		}
		if past {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPackedPageBytes: a page's packed members count in the cache's bytes
// while it is cached, evicting beyond the bound; packing is done once;
// a page whose lot cannot be encoded (past year 9999) packs to that error,
// and the till is answered 500 saying so.
func TestPackedPageBytes(t *testing.T) {
	var cards []store.ReplicaCard
	var lots []store.ReplicaLot
	for i := range 200 {
		code := fmt.Sprintf("29%011d", i)
		cards = append(cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		lots = append(lots, lot(code, fmt.Sprint("L", i), "50", demoNow, nil))
	}
	one := pageBytes(cards, lots)
	c := newPageCache(1<<40, time.Hour)
	k := func(after string) pageKey { return pageKey{after, 200} }
	keep := func(after string, cs []store.ReplicaCard, ls []store.ReplicaLot) *cachedPage {
		c.put(k(after), nil, 500, cs, ls, "")
		c.put(k(after), nil, 500, cs, ls, "")
		p, read := c.lookup(context.Background(), k(after))
		c.done(k(after), read)
		if p == nil {
			t.Fatalf("page after %q not kept", after)
		}
		return p
	}
	a := keep("a", cards, lots)
	pk, err := c.pack(a)
	if err != nil || pk.cards == nil || pk.lots == nil {
		t.Fatalf("pack: %v %+v", err, pk)
	}
	n := int64(len(pk.cards) + len(pk.lots))
	if got := c.heldBytes(); got != one+n {
		t.Errorf("cache holds %d bytes, want the page's %d and its members' %d", got, one, n)
	}
	if again, _ := c.pack(a); again != pk || int64(len(again.cards)+len(again.lots)) != n || c.heldBytes() != one+n {
		t.Error("a page packed twice")
	}
	// A second page fits; packing it too passes the bound: the page used
	// longest ago goes.
	c.maxBytes = 2*one + n + n/2
	b := keep("b", cards, lots)
	if _, err := c.pack(b); err != nil {
		t.Fatal(err)
	}
	if p, read := c.lookup(context.Background(), k("a")); p != nil || c.heldBytes() != one+n {
		t.Errorf("after packing a second page: page a kept %v, %d bytes held, want %d", p != nil, c.heldBytes(), one+n)
	} else {
		c.done(k("a"), read)
	}

	late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	bad := slices.Clone(lots)
	bad[7].ExpiresAt = &late
	p := keep("c", cards, bad)
	if _, err := c.pack(p); err == nil {
		t.Fatal("a lot of year 10000 packed")
	}
	s := openTest(t)
	rec := httptest.NewRecorder()
	f := &wire.Feed{Full: true, Replica: &store.Replica{Version: store.ReplicaFormatVersion, Cards: cards, Lots: bad}}
	s.pages = c
	s.replyPage(rec, httptest.NewRequest("GET", "/v1/till/feed?snapshot=1", nil), f, p)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "year outside of range") {
		t.Errorf("a page that cannot be encoded: %d %s", rec.Code, rec.Body)
	}
}
