package headoffice

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestMassImportSendsEachCardOnce: an ERP import of N cards, each with a
// lot, logs one change per card, so the delta a till pulls over HTTP (in
// pages of 7 change records) carries each card once with its lot: N card
// records, not 2N. A store whose card scope is home still receives only
// its home cards. The lots the till receives add up to head office's
// balances.
func TestMassImportSendsEachCardOnce(t *testing.T) {
	const n = 25
	ctx := context.Background()
	s, tills, hs := twoScopes(t)
	get := func(till string, q url.Values) *wire.Feed {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/till/feed?"+q.Encode(), nil)
		req.SetBasicAuth(till, tills[till])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("feed of %s: %s %s", till, resp.Status, data)
		}
		f, err := wire.DecodeFeed(data)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cursors := map[string]string{}
	for till := range tills {
		cursors[till] = get(till, url.Values{"snapshot": {"1"}, "limit": {"1000"}}).Cursor
	}

	mass := &store.Replica{Version: 1}
	want := map[string]decimal.Decimal{}
	for i := 0; i < n; i++ {
		code := fmt.Sprintf("29300000%05d", i)
		pts := decimal.NewFromInt(int64(10 + i))
		want[code] = pts
		mass.Cards = append(mass.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		mass.Lots = append(mass.Lots, store.ReplicaLot{ID: "M1", Card: code, Points: checkout.PointsOf(pts), AccruedAt: demoNow.Add(-time.Hour)})
	}
	st, err := s.Import(ctx, mass)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cards != n || st.Lots != n {
		t.Fatalf("import stats %+v, want %d cards and %d lots", st, n, n)
	}
	if _, err := s.AssignCards(ctx, "S002", []string{"2930000000003"}); err != nil {
		t.Fatal(err)
	}

	// pull walks the delta's pages as a till does, counting the card
	// records and keeping each lot's last state (a till upserts them).
	pull := func(till string) (cards map[string]int, lots map[string]decimal.Decimal, pages int) {
		cards, lots = map[string]int{}, map[string]decimal.Decimal{}
		held := map[[2]string]decimal.Decimal{}
		after := ""
		for {
			q := url.Values{"cursor": {cursors[till]}, "limit": {"7"}, "folded": {""}}
			if after != "" {
				q.Set("after", after)
			}
			f := get(till, q)
			pages++
			for _, c := range f.Replica.Cards {
				cards[c.Code]++
			}
			for _, l := range f.Replica.Lots {
				held[[2]string{l.Card, l.ID}] = l.Remaining.Decimal()
			}
			if !f.More {
				for k, v := range held {
					lots[k[0]] = lots[k[0]].Add(v)
				}
				return cards, lots, pages
			}
			after = f.Next
		}
	}
	var rows int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM changes WHERE section = 'cards' AND key LIKE '29300000%'`).Scan(&rows); err != nil || rows != n {
		t.Errorf("the import logged %d card changes (%v), want %d: one a card", rows, err, n)
	}
	// Another package's test writing to the same cluster holds the cursor
	// back (it is cluster-wide), so the delta may repeat the demo's
	// records: only the imported cards are counted.
	cards, lots, pages := pull("S001-T01")
	total := 0
	for code := range want {
		total += cards[code]
		if cards[code] != 1 {
			t.Errorf("card %s came %d times in the delta, want once", code, cards[code])
		}
	}
	if total != n || pages < n/7+1 {
		t.Errorf("delta of the import: %d records of its cards in %d pages of 7, want %d", total, pages, n)
	}
	bal, err := s.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bal {
		if w, ok := want[b.Card]; ok && (!b.Balance.Decimal().Equal(w) || !lots[b.Card].Equal(w)) {
			t.Errorf("card %s: head office %s, the till's lots %s; want %s", b.Card, b.Balance, lots[b.Card], w)
		}
	}
	home, _, _ := pull("S002-T01")
	if len(home) != 1 || home["2930000000003"] != 1 {
		t.Errorf("home-scoped store S002 received %v, want only its home card 2930000000003, once", home)
	}
}

// twoScopes is head office holding the demo with store S002 on the home
// card scope, till S001-T01 (store S001, all cards) and S002-T01 enrolled
// (their secrets by till id), served over a loopback socket.
func twoScopes(t *testing.T) (*Server, map[string]string, *httptest.Server) {
	t.Helper()
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCardScope(ctx, "S002", ScopeHome); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, tl := range [][2]string{{"S001-T01", "S001"}, {"S002-T01", "S002"}} {
		secret, err := s.Enrol(ctx, tl[0], tl[1])
		if err != nil {
			t.Fatal(err)
		}
		secrets[tl[0]] = secret
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, secrets, hs
}
