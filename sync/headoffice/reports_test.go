package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// tillPush enrols till of store and returns a caller pushing a batch of
// its journal to s over a loopback HTTP server, as the till's agent does;
// it fails the test unless every entry is answered applied, but those
// named in rejected, which must be answered rejected.
func tillPush(t *testing.T, s *Server, till, storeID string, rejected ...string) func(entries ...wire.Entry) {
	t.Helper()
	secret, err := s.Enrol(context.Background(), till, storeID)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return func(entries ...wire.Entry) {
		t.Helper()
		body, err := json.Marshal(wire.Batch{TillID: till, Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/till/journal", bytes.NewReader(body))
		req.SetBasicAuth(till, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var res wire.BatchResult
		if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &res) != nil || len(res.Results) != len(entries) {
			t.Fatalf("push of %d entries of till %s: %d %s", len(entries), till, resp.StatusCode, data)
		}
		for _, r := range res.Results {
			want := wire.Applied
			if slices.Contains(rejected, r.ID) {
				want = wire.Rejected
			}
			if r.Status != want {
				t.Fatalf("push of till %s: entry %s %s (%s), want %s", till, r.ID, r.Status, r.Error, want)
			}
		}
	}
}

// sumBalances pages through GET /v1/erp/reports/balances (limit cards a
// page) and returns Σ balances and the number of cards.
func sumBalances(t *testing.T, call func(method, path, body string) (int, string), limit int) (decimal.Decimal, int) {
	t.Helper()
	sum, n, after := decimal.Zero, 0, ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("balances report: more than 100 pages")
		}
		code, data := call("GET", fmt.Sprintf("/v1/erp/reports/balances?limit=%d&after=%s", limit, url.QueryEscape(after)), "")
		var p BalancePage
		if code != http.StatusOK || json.Unmarshal([]byte(data), &p) != nil {
			t.Fatalf("balances page after %q: %d %s", after, code, data)
		}
		if len(p.Balances) > limit || (p.More && len(p.Balances) != limit) {
			t.Fatalf("balances page after %q: %d cards, more %v; want at most %d, exactly that when more follow", after, len(p.Balances), p.More, limit)
		}
		for _, b := range p.Balances {
			if b.Card <= after {
				t.Fatalf("balances page after %q holds card %s", after, b.Card)
			}
			sum, n, after = sum.Add(b.Balance.Decimal()), n+1, b.Card
		}
		if !p.More {
			if p.Next != "" {
				t.Fatalf("last balances page: next %q, want none", p.Next)
			}
			return sum, n
		}
		if p.Next != after {
			t.Fatalf("balances page: next %q, want its last card %s", p.Next, after)
		}
	}
}

// TestAccrualsMatchBalances: over real HTTP, a till accrues on customer,
// family and agent cards, redeems, returns both (partly onto the "~debt"
// lot, partly with reversals without lots), accrues 1000 on a card head
// office does not know, and ERP corrects a card; another till's entry at
// the period's end, one waiting behind a gap and one head office kept as
// rejected (a return its check never spent) are not counted; one finer
// than the card's program counts now is. The
// report's net totals (customer + agent − redeemed + corrections) equal
// the change in Σ balances (the balances report, paged), each total is
// the one its doc comment defines, and the unknown card's points and the
// unfolded entry are reported apart.
func TestAccrualsMatchBalances(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	id1 := func(n int) string { return fmt.Sprintf("S001-T01-%026d", n) }
	push1 := tillPush(t, s, "S001-T01", "S001", id1(11))
	push2 := tillPush(t, s, "S002-T01", "S002")
	from, to := demoNow, demoNow.Add(time.Hour)
	id2 := func(n int) string { return fmt.Sprintf("S002-T01-%026d", n) }
	lot := func(id, delta string) store.LotChange { return store.LotChange{LotID: id, Delta: dec(delta)} }
	newLot := func(id, delta string) store.LotChange {
		return store.LotChange{LotID: id, Delta: dec(delta), Create: true, ActiveFrom: from}
	}
	entry := func(id, prev, card string, kind store.Kind, pts string, at time.Time, lots ...store.LotChange) wire.Entry {
		return wire.Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: "chk-" + id[len(id)-2:], CardCode: card, Kind: kind,
			Points: dec(pts), Lots: lots, CreatedAt: at}}
	}

	// At the period's end (to is excluded): folded, not counted.
	push2(entry(id2(1), "", "2900000000025", store.KindAccrual, "13", to, newLot(id2(1), "13")))
	before, cards := sumBalances(t, call, 3)
	if cards != 8 {
		t.Fatalf("balances report: %d cards, want the demo's 8", cards)
	}

	var chain []wire.Entry
	add := func(card string, kind store.Kind, pts string, lots ...store.LotChange) string {
		prev := ""
		if len(chain) > 0 {
			prev = chain[len(chain)-1].ID
		}
		id := id1(len(chain) + 1)
		chain = append(chain, entry(id, prev, card, kind, pts, from, lots...))
		return id
	}
	// Customer card 2900000000049: accrual 40, redemption 30, both returned.
	a1 := add("2900000000049", store.KindAccrual, "40", newLot(id1(1), "40"))
	add("2900000000049", store.KindRedemption, "-30", lot("L-44-1", "-30"))
	add("2900000000049", store.KindReversal, "-10", lot(a1, "-40"), lot("L-44-1", "30"))
	chain[len(chain)-1].CheckID = chain[len(chain)-2].CheckID // the return of that sale
	// A card head office does not know: folded as nothing.
	add("9999999999999", store.KindAccrual, "1000", newLot(id1(4), "1000"))
	// Family card (limit 500: keeps its debt): accrual 50, 30 of it spent,
	// the return takes back the 20 left and puts 30 on ~debt; a reversal
	// without lots takes 5 more.
	f1 := add("2700000000014", store.KindAccrual, "50", newLot(id1(5), "50"))
	add("2700000000014", store.KindRedemption, "-30", lot(f1, "-30"))
	add("2700000000014", store.KindReversal, "-50", lot(f1, "-20"), lot(store.DebtLot, "-30"))
	add("2700000000014", store.KindReversal, "-5")
	// Agent (referral) card: accrual 100, 40 of it returned.
	g1 := add("2600000000017", store.KindAccrual, "100", newLot(id1(9), "100"))
	add("2600000000017", store.KindReversal, "-40", lot(g1, "-40"))
	// A reversal without lots giving back 7 points its check never spent:
	// kept as rejected.
	add("2900000000056", store.KindReversal, "7")
	// A plain accrual.
	add("2900000000018", store.KindAccrual, "200", newLot(id1(12), "200"))
	// Finer than BONUS counts points now (scale 0): the till priced it
	// with the program it had, so it is folded as it is.
	add("2900000000018", store.KindAccrual, "0.5", newLot(id1(13), "0.5"))
	push1(chain...)
	// Waits behind a gap in till 2's chain: stored, not folded.
	push2(entry(id2(5), id2(4), "2900000000018", store.KindAccrual, "77", from, newLot(id2(5), "77")))
	if code, data := call("POST", "/v1/erp/corrections", `{"id":"acc-fix","card":"2900000000018","points":"25","reason":"support"}`); code != http.StatusOK {
		t.Fatalf("correction: %d %s", code, data)
	}

	after, _ := sumBalances(t, call, 3)
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	code, data := call("GET", "/v1/erp/reports/accruals?"+q.Encode(), "")
	var a AccrualTotals
	if code != http.StatusOK || json.Unmarshal([]byte(data), &a) != nil {
		t.Fatalf("accruals report: %d %s", code, data)
	}
	net := a.CustomerAccrued.Decimal().Add(a.AgentAccrued.Decimal()).Sub(a.Redeemed.Decimal()).Add(a.Corrections.Decimal())
	if delta := after.Sub(before); !net.Equal(delta) {
		t.Errorf("accruals report %s: customer + agent − redeemed + corrections = %s, but Σ balances changed by %s", data, net, delta)
	}
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"customer_accrued (40 + 50 + 200 + 0.5 − 40 − 20 − 30 − 5)", a.CustomerAccrued.String(), "195.5"},
		{"agent_accrued (100 − 40)", a.AgentAccrued.String(), "60"},
		{"redeemed (30 + 30 − 30)", a.Redeemed.String(), "30"},
		{"returned.customer_accrued", a.Returned.CustomerAccrued.String(), "95"},
		{"returned.agent_accrued", a.Returned.AgentAccrued.String(), "40"},
		{"returned.redeemed", a.Returned.Redeemed.String(), "30"},
		{"corrections", a.Corrections.String(), "25"},
		{"unknown_cards.entries", fmt.Sprint(a.UnknownCards.Entries), "1"},
		{"unknown_cards.points", a.UnknownCards.Points.String(), "1000"},
		{"unfolded.entries", fmt.Sprint(a.Unfolded.Entries), "1"},
		{"unfolded.points", a.Unfolded.Points.String(), "77"},
		{"rejected.entries", fmt.Sprint(a.Rejected.Entries), "1"},
		{"rejected.points", a.Rejected.Points.String(), "7"},
	} {
		if c.got != c.want {
			t.Errorf("accruals report %s = %s, want %s (report %s)", c.name, c.got, c.want, data)
		}
	}
	if b, err := s.CardBalanceOf(ctx, "2700000000014"); err != nil || b.Balance.String() != "2465" || b.Debt.String() != "0" {
		t.Errorf("family card after the returns: %+v, %v; want balance 2465, its debt of 35 settled from its lots (no write-off)", b, err)
	}

	// ERP imports the unknown card afterwards: its entry still reached no
	// card, and the report says so as before.
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: "9999999999999", Kind: "bonus", State: "active"}}}); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Accruals(ctx, from, to); err != nil || fmt.Sprint(again) != fmt.Sprint(a) {
		t.Errorf("accruals once the unknown card is imported: %+v, %v; want as before, %+v", again, err, a)
	}

	// The period after: only till 2's entry at its start.
	if a, err := s.Accruals(ctx, to, to.Add(time.Hour)); err != nil || a.CustomerAccrued.String() != "13" || !a.Redeemed.IsZero() || a.UnknownCards.Entries != 0 {
		t.Errorf("accruals of the next hour: %+v, %v; want 13 accrued only", a, err)
	}
}

// TestAccrualsReadABodyWithNUL: a journal body holding \u0000 (stored
// before head office refused them) does not take the report down: the
// report reads it and counts it.
func TestAccrualsReadABodyWithNUL(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	body := `{"id":"ERP-nul","check_id":"ERP-nul","card_code":"2900000000018","kind":"correction","points":"3","note":"typo\u0000 \\u0000",` +
		`"created_at":"` + demoNow.UTC().Format(time.RFC3339) + `","amount_kop":0,"purchase_kop":0,"acked":false,"prev":""}`
	if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded, created_at)
		VALUES ('ERP-nul', 'ERP', '2900000000018', 'correction', 3, $1, '\x00', true, $2)`, body, demoNow); err != nil {
		t.Skipf("the journal refuses a body with \\u0000 (%v): nothing left to read", err)
	}
	a, err := s.Accruals(ctx, demoNow.Add(-time.Hour), demoNow.Add(time.Hour))
	if err != nil || a.Corrections.String() != "3" {
		t.Fatalf("accruals over a body with \\u0000: %+v, %v; want corrections 3", a, err)
	}
}

// TestReportParametersRefused: the accruals, balances, export and
// conflicts endpoints answer 400 naming the parameter (and its value) for
// what they cannot use, instead of guessing; all=true lists settled
// conflicts as all=1 does.
func TestReportParametersRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/v1/erp/reports/accruals?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
			[]string{"from 2026-12-02T00:00:00Z is not before to 2026-12-01T00:00:00Z"}},
		{"/v1/erp/reports/accruals?from=2026-12-01T00:00:00Z&to=2026-12-01T00:00:00Z", []string{"is not before to"}},
		// An unescaped + reads as a space.
		{"/v1/erp/reports/accruals?from=2026-12-01T00:00:00+03:00&to=2026-12-02T00:00:00Z",
			[]string{`from "2026-12-01T00:00:00 03:00" is not an RFC 3339 time`, "%2B"}},
		{"/v1/erp/reports/accruals?from=2026-12-01T00:00:00Z&to=tomorrow", []string{`to "tomorrow" is not an RFC 3339 time`}},
		{"/v1/erp/reports/accruals?from=2026-12-01T00:00:00Z", []string{"to is required"}},
		{"/v1/erp/reports/accruals?from=x&to=y", []string{`from "x"`, `to "y"`}},
		{"/v1/erp/reports/accruals?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z&card=1", []string{`unknown parameter "card"`}},
		{"/v1/erp/conflicts?all=yes", []string{`all "yes"`}},
		{"/v1/erp/conflicts?al=1", []string{`unknown parameter "al"`}},
		{"/v1/erp/journal?limit=abc", []string{`limit "abc" is not a positive integer`}},
		{"/v1/erp/journal?limit=-5", []string{`limit "-5"`}},
		{"/v1/erp/journal?limit=0", []string{`limit "0"`}},
		{"/v1/erp/journal?limit=", []string{`limit ""`}},
		{"/v1/erp/reports/balances?limit=abc", []string{`limit "abc"`}},
		{"/v1/erp/reports/balances?limit=0", []string{`limit "0"`}},
		{"/v1/erp/reports/balances?card=", []string{"card= is empty"}},
		{"/v1/erp/reports/balances?card=2900000000018&limit=5", []string{"not both"}},
		{"/v1/erp/reports/balances?cards=2900000000018", []string{`unknown parameter "cards"`}},
	} {
		code, data := call("GET", c.path, "")
		var e struct{ Error string }
		ok := code == http.StatusBadRequest && json.Unmarshal([]byte(data), &e) == nil
		for _, w := range c.want {
			ok = ok && strings.Contains(e.Error, w)
		}
		if !ok {
			t.Errorf("GET %s: %d %s, want 400 naming %q", c.path, code, data, c.want)
		}
	}

	// A conflict, settled: listed by all=1 and all=true, not by all=false.
	push := tillPush(t, s, "S001-T01", "S001")
	e := wire.Entry{Entry: store.Entry{ID: "S001-T01-01KAAAAAAAAAAAAAAAAAAAAAA1", CheckID: "c1", CardCode: "2900000000018",
		Kind: store.KindAccrual, Points: dec("5"), CreatedAt: demoNow}}
	push(e)
	e.Points = dec("6")
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T01", Entries: []wire.Entry{e}}); err != nil {
		t.Fatal(err)
	}
	if err := s.KeepHeadOffice(ctx, e.ID, "test"); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{"": 0, "?all=1": 1, "?all=true": 1, "?all=TRUE": 1, "?all=0": 0, "?all=false": 0} {
		code, data := call("GET", "/v1/erp/conflicts"+q, "")
		var p ConflictPage
		if code != http.StatusOK || json.Unmarshal([]byte(data), &p) != nil || len(p.Conflicts) != want || p.More {
			t.Errorf("GET /v1/erp/conflicts%s: %d %s, want %d conflicts", q, code, data, want)
		}
	}
}

// TestReportPagesClamped: above the maximum, the export and the balances
// report answer a page of the maximum (10000) and say more follow; the
// balances report's default page is 1000.
func TestReportPagesClamped(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	// 10001 more cards and journal rows, written directly: the paging is
	// under test, not ingestion.
	if _, err := s.db.Exec(ctx, `INSERT INTO cards (code, kind, state) SELECT 'P' || lpad(n::text, 6, '0'), 'bonus', 'active' FROM generate_series(1, 10001) n`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded)
		SELECT 'X-' || n, 'X', 'P000001', 'accrual', 1, '{}', '\x00', true FROM generate_series(1, 10001) n`); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	page := func(path string) BalancePage {
		t.Helper()
		code, data := call("GET", path, "")
		var p BalancePage
		if code != http.StatusOK || json.Unmarshal([]byte(data), &p) != nil {
			t.Fatalf("GET %s: %d %.300s", path, code, data)
		}
		return p
	}
	if p := page("/v1/erp/reports/balances"); len(p.Balances) != DefaultBalanceLimit || !p.More || p.Next != p.Balances[999].Card {
		t.Errorf("balances, no limit: %d cards, more %v, next %q; want 1000, more, next its last card", len(p.Balances), p.More, p.Next)
	}
	p := page("/v1/erp/reports/balances?limit=20000")
	if len(p.Balances) != MaxBalanceLimit || !p.More {
		t.Errorf("balances limit=20000: %d cards, more %v; want 10000 and more", len(p.Balances), p.More)
	}
	rest := page("/v1/erp/reports/balances?limit=20000&after=" + url.QueryEscape(p.Next))
	if len(rest.Balances) != 10009-MaxBalanceLimit || rest.More || rest.Balances[0].Card <= p.Next {
		t.Errorf("balances after %s: %d cards, more %v; want the last 9 and no more", p.Next, len(rest.Balances), rest.More)
	}
	// The export holds back entries of transactions newer than the oldest
	// running one in the cluster (other tests' too): wait for it to pass.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, data := call("GET", "/v1/erp/journal?limit=20000", "")
		var e Export
		if code != http.StatusOK || json.Unmarshal([]byte(data), &e) != nil {
			t.Fatalf("export limit=20000: %d %.300s", code, data)
		}
		if len(e.Entries) == MaxExportLimit && e.More {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export limit=20000: %d entries, more %v; want 10000 and more", len(e.Entries), e.More)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBalancesOneCard: card=CODE answers that card's balance alone (as
// the whole report has it); an unknown card is 404 naming it.
func TestBalancesOneCard(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "one", Card: "2900000000018", Points: dec("-350"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	code, data := call("GET", "/v1/erp/reports/balances?card=2900000000018", "")
	if code != http.StatusOK || strings.TrimSpace(data) != `{"card":"2900000000018","balance":"150","debt":"50","expired":"0"}` {
		t.Errorf("balance of card 13: %d %s, want balance 150 (500 unexpired − 350) with debt 50 (300 active − 350)", code, data)
	}
	all, err := s.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		one, err := s.CardBalanceOf(ctx, b.Card)
		if err != nil || one.Card != b.Card || one.Balance.String() != b.Balance.String() || one.Debt.String() != b.Debt.String() {
			t.Errorf("card %s alone: %+v, %v; in the whole report %+v", b.Card, one, err, b)
		}
	}
	if code, data := call("GET", "/v1/erp/reports/balances?card=2999999999999", ""); code != http.StatusNotFound || !strings.Contains(data, "2999999999999") {
		t.Errorf("balance of an unknown card: %d %s, want 404 naming it", code, data)
	}
}
