package headoffice

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/sync/wire"
)

// TestTillFetchesACardOfAnotherStore: store S002 receives only its home
// cards; its till asks for a card of another store over HTTP and gets it
// with its live lots (adding up to head office's balance). The card is then
// home to S002, once however often it is asked, so its later changes reach
// S002's tills in their deltas. A till of an `all` store gets the card and
// writes nothing; an unknown card is 404, a request that is not one 400,
// no credentials 401.
func TestTillFetchesACardOfAnotherStore(t *testing.T) {
	ctx := context.Background()
	s, secrets, hs := twoScopes(t)
	if _, err := s.AssignCards(ctx, "S002", []string{"2900000000025"}); err != nil {
		t.Fatal(err)
	}
	call := func(till, method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader([]byte(body)))
		if till != "" {
			req.SetBasicAuth(till, secrets[till])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	feed := func(till string, q url.Values) *wire.Feed {
		t.Helper()
		code, data := call(till, "GET", "/v1/till/feed?"+q.Encode(), "")
		if code != 200 {
			t.Fatalf("feed of %s: %d %s", till, code, data)
		}
		f, err := wire.DecodeFeed(data)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	first := feed("S002-T01", url.Values{"snapshot": {"1"}, "limit": {"100"}})
	if len(first.Replica.Cards) != 1 || first.Replica.Cards[0].Code != "2900000000025" {
		t.Fatalf("S002's first load: %d cards, want its one home card", len(first.Replica.Cards))
	}

	const visitor = "2900000000018"
	fetch := func(till string) *wire.CardAnswer {
		t.Helper()
		code, data := call(till, "POST", "/v1/till/cards", `{"codes": ["`+visitor+`"]}`)
		if code != 200 {
			t.Fatalf("%s fetching %s: %d %s", till, visitor, code, data)
		}
		f, err := wire.DecodeCardAnswer(data, []string{visitor})
		if err != nil {
			t.Fatal(err)
		}
		scope := map[string]string{"S001-T01": ScopeAll, "S002-T01": ScopeHome}[till]
		if len(f.Replica.Cards) != 1 || len(f.Undecoded) > 0 || len(f.Unknown) > 0 || f.Scope != scope {
			t.Fatalf("%s fetching %s: %d cards, %d undecoded, unknown %v, scope %q; want the one card, scope %s",
				till, visitor, len(f.Replica.Cards), len(f.Undecoded), f.Unknown, f.Scope, scope)
		}
		sum := decimal.Zero
		for _, l := range f.Replica.Lots {
			if l.Card != visitor || l.Remaining == nil || !l.Remaining.Decimal().IsPositive() {
				t.Fatalf("%s fetching %s: lot %+v, want only the card's live lots", till, visitor, l)
			}
			sum = sum.Add(l.Remaining.Decimal())
		}
		if want := heldPoints(t, s, visitor); sum.String() != want {
			t.Fatalf("%s fetching %s: lots add up to %s, head office holds %s", till, visitor, sum, want)
		}
		return f
	}
	homeChanges := func(store string) int {
		t.Helper()
		var n int
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM changes WHERE section = 'home/' || $1 AND key = $2`, store, visitor).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	fetch("S002-T01")
	fetch("S002-T01")
	if sc, err := s.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 2 {
		t.Fatalf("S002 after the fetches: %+v, %v; want 2 home cards", sc, err)
	}
	if n := homeChanges("S002"); n != 1 {
		t.Fatalf("%d home/S002 changes of the fetched card, want 1 however often it is asked", n)
	}

	// Its later changes reach S002's tills. (The delta holds back changes
	// of transactions younger than the oldest running anywhere in the
	// cluster, which other tests may hold open for a moment.)
	if _, err := s.Correct(ctx, Correction{ID: "fetch-c1", Card: visitor, Points: dec("33"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d := feed("S002-T01", url.Values{"cursor": {first.Cursor}})
		sum, got := decimal.Zero, false
		for _, c := range d.Replica.Cards {
			got = got || c.Code == visitor
		}
		for _, l := range d.Replica.Lots {
			if l.Card == visitor {
				sum = sum.Add(l.Remaining.Decimal())
			}
		}
		if got && sum.String() == heldPoints(t, s, visitor) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("S002's delta: card %s there %v, lots %s; want it with the correction (%s)", visitor, got, sum, heldPoints(t, s, visitor))
		}
	}

	fetch("S001-T01") // all cards: nothing to write
	if sc, err := s.StoreCardScope(ctx, "S001"); err != nil || sc.HomeCards != 0 || homeChanges("S001") != 0 {
		t.Fatalf("S001 (all cards) after a fetch: %+v, %v; want nothing made home", sc, err)
	}

	// Several at once (a till after head office was restored), one of
	// them unknown, one twice.
	code, data := call("S002-T01", "POST", "/v1/till/cards", `{"codes": ["2900000000099", "2900000000032", "2900000000032", "`+visitor+`"]}`)
	if code != 200 {
		t.Fatalf("fetching three cards: %d %s", code, data)
	}
	many, err := wire.DecodeCardAnswer(data, []string{"2900000000099", "2900000000032", visitor})
	if err != nil {
		t.Fatal(err)
	}
	if len(many.Replica.Cards) != 2 || many.Replica.Cards[0].Code != visitor || many.Replica.Cards[1].Code != "2900000000032" ||
		len(many.Unknown) != 1 || many.Unknown[0] != "2900000000099" {
		t.Fatalf("fetching three cards: %d cards, unknown %v; want 018 and 032, 099 unknown", len(many.Replica.Cards), many.Unknown)
	}
	if sc, err := s.StoreCardScope(ctx, "S002"); err != nil || sc.HomeCards != 3 {
		t.Fatalf("S002 after fetching 032 too: %+v, %v; want 3 home cards", sc, err)
	}
	if _, err := wire.DecodeCardAnswer(data, []string{visitor}); err == nil || !strings.Contains(err.Error(), "not asked for") {
		t.Errorf("an answer carrying a card not asked for: %v, want refused", err)
	}

	thousand := `"` + strings.Repeat(`1", "`, 1000) + `1"`
	for _, c := range []struct {
		till, body string
		status     int
		says       string
	}{
		{"S002-T01", `{"codes": []}`, 400, "0 codes"},
		{"S002-T01", `{"codes": [` + thousand + `]}`, 400, "1001 codes"},
		{"S002-T01", `{"codes": [""]}`, 400, "card code 1"},
		{"S002-T01", `{"codes": ["` + strings.Repeat("9", 65) + `"]}`, 400, "card code"},
		{"S002-T01", `{"codes": ["a\u0000b"]}`, 400, "card code"},
		{"S002-T01", `{"codes": ["` + visitor + `"], "store": "S001"}`, 400, "store"},
		{"S002-T01", `not json`, 400, "fetch cards"},
		{"", `{"codes": ["` + visitor + `"]}`, 401, "credentials"},
	} {
		code, data := call(c.till, "POST", "/v1/till/cards", c.body)
		if code != c.status || !strings.Contains(string(data), c.says) {
			t.Errorf("fetch %s: %d %s, want %d saying %q", c.body, code, data, c.status, c.says)
		}
	}
}

// heldPoints is what the card's lots hold at head office, active or not.
func heldPoints(t *testing.T, s *Server, card string) string {
	t.Helper()
	var sum string
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce(sum(remaining), 0)::text FROM lots WHERE card = $1`, card).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return dec(sum).String()
}
