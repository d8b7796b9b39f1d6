package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/shopspring/decimal"

	"tillagent/sync/headoffice"
)

// TestFirstLoadInPagesStaysConsistent: the till loads the demo's 8 cards
// in pages of 3; after the first page head office corrects a card already
// loaded and one not yet loaded. When the first sync ends the till shows
// exactly head office's balances (the delta from the first page's cursor
// re-sent the card changed behind the pages), and the progress is counted.
func TestFirstLoadInPagesStaysConsistent(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	pages := 0
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("snapshot") != "1" {
			return
		}
		if pages++; pages == 2 {
			// 2600000000017 is on page 1 (codes sort), 2900000000049 on page 3.
			for _, c := range []headoffice.Correction{
				{ID: "p1", Card: "2600000000017", Points: decimal.NewFromInt(-100), Reason: "between pages"},
				{ID: "p3", Card: "2900000000049", Points: decimal.NewFromInt(77), Reason: "between pages"},
			} {
				if _, err := h.srv.Correct(ctx, c); err != nil {
					t.Error(err)
				}
			}
		}
	}
	tl := newTill(t, h, p, "S001-T50", "S001", 0)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if pages != 3 {
		t.Fatalf("%d snapshot pages, want 3 (8 cards, 3 a page)", pages)
	}
	if st := tl.c.Status(); st.LoadedCards != 8 || st.Loading {
		t.Fatalf("status after the first load: %+v", st)
	}
	for card, b := range hoBalances(t, h) {
		tb, err := tl.st.Spendable(ctx, card, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		if tb.Total.String() != b {
			t.Errorf("card %s: till %s, head office %s", card, tb.Total, b)
		}
	}
	if b := hoBalances(t, h); b["2600000000017"] != "600" || b["2900000000049"] != "1277" {
		t.Fatalf("corrections not applied: %v", b)
	}
}

// TestTillsShareFirstLoadPages: three tills of a store that gets every
// card load their replicas one after another, in pages of 3, through HTTP;
// the second's pages are kept, and the third is given them, with a card of
// its first page and one of its last corrected in between (and one
// corrected while its own load runs), so it is given them with those cards
// read again; a fourth is given them as the third's load kept them,
// packed (nothing read again). Every till ends with head office's
// balances, and head office counts pages given from the cache. (The delta
// after a load would mend a stale page here: what a page given from the
// cache holds is headoffice's TestSnapshotCacheGivesTheTillsOwnSnapshot.)
func TestTillsShareFirstLoadPages(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	correct := func(id, card string, pts int64) {
		if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: id, Card: card, Points: decimal.NewFromInt(pts), Reason: "between loads"}); err != nil {
			t.Fatal(err)
		}
	}
	var tills []*till
	for i, id := range []string{"S001-T51", "S001-T52", "S001-T53", "S001-T54"} {
		if i == 2 {
			correct("c1", "2600000000017", -100)
			correct("c3", "2900000000049", 77)
			// The third till's snapshot sees both: while another package's
			// older transaction runs, it would not, and every page with
			// their cards would be read again for the fourth till too.
			caughtUp(t, h, "changes")
			pages := 0
			p.onFeed = func(r *http.Request) {
				if r.URL.Query().Get("snapshot") == "1" {
					if pages++; pages == 2 {
						correct("c2", "2900000000025", 5)
					}
				}
			}
		}
		if i == 3 {
			p.onFeed = nil
		}
		tl := newTill(t, h, p, id, "S001", 0)
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		tills = append(tills, tl)
	}
	for _, tl := range tills {
		if err := tl.c.SyncNow(ctx); err != nil { // the first two: the corrections since
			t.Fatal(err)
		}
		for card, b := range hoBalances(t, h) {
			tb, err := tl.st.Spendable(ctx, card, demoNow)
			if err != nil {
				t.Fatal(err)
			}
			if tb.Total.String() != b {
				t.Errorf("till %s, card %s: %s, head office %s", tl.id, card, tb.Total, b)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, m := range []string{"hits", "packed"} {
		n := regexp.MustCompile(`(?m)^headoffice_snapshot_cache_` + m + `_total (\d+)$`).FindStringSubmatch(rec.Body.String())
		if n == nil || n[1] == "0" {
			t.Errorf("no page given from the cache (%s): %v\n%s", m, n, rec.Body.String())
		}
	}
}
