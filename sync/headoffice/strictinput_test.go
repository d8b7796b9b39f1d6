package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// TestERPBodyKeyTwiceRefused: an ERP body naming a key twice is 400
// naming the key (encoding/json would silently keep the last: a
// correction's card or points swapped), at the top and inside an array's
// objects, and nothing is written; the same bodies with each key once go
// through.
func TestERPBodyKeyTwiceRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/erp/corrections", `{"id":"d1","card":"2900000000018","points":"5","reason":"x","card":"2700000000014"}`,
			`correction: field "card" given twice`},
		{"POST", "/v1/erp/corrections", `{"id":"d2","card":"2900000000018","points":"5","points":"-5","reason":"x"}`,
			`correction: field "points" given twice`},
		{"POST", "/v1/erp/stores/S001/cards", `{"cards":["2900000000018"],"cards":["2900000000025"]}`, `assign cards: field "cards" given twice`},
		{"POST", "/v1/erp/tills", `{"till_id":"S001-T09","store_id":"S001","till_id":"S001-T08"}`, `enrol: field "till_id" given twice`},
		{"PUT", "/v1/erp/stores/S002/card-scope", `{"scope":"all","scope":"home"}`, `card scope: field "scope" given twice`},
		{"POST", "/v1/erp/conflicts/x", `{"keep":"head_office","reason":"a","reason":"b"}`, `settle conflict: field "reason" given twice`},
		// Deeper than the bodies go, the same.
		{"POST", "/v1/erp/stores/S001/cards", `{"cards":[{"a":1,"a":2}]}`, `field "cards[0].a" given twice`},
	} {
		code, body := call(c.method, c.path, c.body)
		if code != http.StatusBadRequest || !strings.Contains(refusal(body), c.want) {
			t.Errorf("%s %s %s: %d %s, want 400 naming %q", c.method, c.path, c.body, code, body, c.want)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM journal`, `SELECT count(*) FROM card_stores`, `SELECT count(*) FROM tills`,
		`SELECT count(*) FROM store_card_scope`} {
		if n := count(t, s, q); n != 0 {
			t.Errorf("%s = %d after refused bodies, want 0", q, n)
		}
	}
	if code, body := call("POST", "/v1/erp/corrections", `{"id":"d1","card":"2700000000014","points":"5","reason":"x"}`); code != http.StatusOK {
		t.Errorf("the correction with each key once: %d %s", code, body)
	}

	// An import is refused whole (422, the record's path named), in JSON
	// as in YAML: a lot's points named twice would load the second.
	imp := `{"version":1,"cards":[{"code":"2900000000099","kind":"bonus","state":"active"}],` +
		`"lots":[{"id":"D1","card":"2900000000099","points":"10","points":"10000","accrued_at":"2026-11-01T00:00:00Z"}]}`
	if code, body := call("POST", "/v1/erp/import", imp); code != http.StatusUnprocessableEntity || !strings.Contains(body, `field \"lots[0].points\" given twice`) {
		t.Errorf("import with a lot's points twice: %d %s, want 422 naming lots[0].points", code, body)
	}
	if n := count(t, s, `SELECT count(*) FROM cards WHERE code = '2900000000099'`); n != 0 {
		t.Errorf("the refused import wrote its card")
	}
	if code, body := call("POST", "/v1/erp/import", strings.Replace(imp, `"points":"10",`, ``, 1)); code != http.StatusOK {
		t.Errorf("the import with each key once: %d %s", code, body)
	}
}

// TestQueryTextRefused: U+0000 or bytes that are not UTF-8 in a query
// parameter or a path id, and a parameter given twice, are 400 naming the
// parameter, on ERP and till endpoints alike; none reaches PostgreSQL (no
// 500, no ERROR logged).
func TestQueryTextRefused(t *testing.T) {
	var logged syncBuffer
	s := openLogged(t, &logged)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/erp/reports/balances?card=29%00", `parameter "card" holds U+0000`},
		{"GET", "/v1/erp/reports/balances?card=29%FF", `parameter "card" holds U+0000 or bytes that are not UTF-8`},
		{"GET", "/v1/erp/reports/balances?after=29%00", `parameter "after" holds U+0000`},
		{"GET", "/v1/erp/reports/balances?after=%C3", `parameter "after"`},
		{"GET", "/v1/erp/journal?cursor=1.2%00", `parameter "cursor" holds U+0000`},
		{"GET", "/v1/erp/conflicts?all=%00", `parameter "all" holds U+0000`},
		{"GET", "/v1/erp/reports/accruals?from=2026-12-01T00:00:00Z%00&to=2026-12-02T00:00:00Z", `parameter "from" holds U+0000`},
		{"GET", "/v1/erp/reports/balances?c%00rd=1", `parameter "c\x00rd" holds U+0000`},
		{"POST", "/v1/erp/conflicts/S001-T01-%00", `id "S001-T01-\x00" in the path holds U+0000`},
		{"GET", "/v1/erp/stores/S0%0001/card-scope", `store "S0\x0001" in the path holds U+0000`},
		{"POST", "/v1/erp/stores/S%FF/cards", `store "S\xff" in the path holds U+0000 or bytes that are not UTF-8`},
		{"POST", "/v1/erp/tills/S001-T01%00/reset-feed", `till "S001-T01\x00" in the path holds U+0000`},
		// A query that does not parse (the pair was dropped: the whole report came back).
		{"GET", "/v1/erp/reports/balances?card=%zz", `query: invalid URL escape "%zz"`},
		// A parameter twice: which value counts would be a guess.
		{"GET", "/v1/erp/reports/balances?limit=1&limit=5000", `parameter "limit" given 2 times`},
		{"GET", "/v1/erp/reports/balances?card=2900000000018&card=2900000000025", `parameter "card" given 2 times`},
		{"GET", "/v1/erp/journal?cursor=&cursor=1.2", `parameter "cursor" given 2 times`},
		{"GET", "/v1/erp/reports/expiring?days=5&days=500", `parameter "days" given 2 times`},
	} {
		body := ""
		if c.method == "POST" {
			body = `{"keep":"head_office","reason":"r"}`
			if strings.HasSuffix(c.path, "/cards") {
				body = `{"cards":["2900000000018"]}`
			}
		}
		code, data := call(c.method, c.path, body)
		// The JSON answer escapes U+0000 and invalid bytes: compare the decoded text.
		if code != http.StatusBadRequest || !strings.Contains(refusal(data), jsonText(c.want)) {
			t.Errorf("%s %s: %d %s, want 400 naming %q", c.method, c.path, code, data, c.want)
		}
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	for _, c := range []struct{ query, want string }{
		{"cursor=%00", `parameter "cursor" holds U+0000`},
		{"snapshot=1&after=29%00", `parameter "after" holds U+0000`},
		{"snapshot=1&folded=S001-T01-%FF", `parameter "folded" holds U+0000 or bytes that are not UTF-8`},
		{"store=S0%0001", `parameter "store" holds U+0000`},
		{"cursor=1.2&limit=10&limit=20", `parameter "limit" given 2 times`},
	} {
		req, _ := http.NewRequest("GET", hs.URL+"/v1/till/feed?"+c.query, nil)
		req.SetBasicAuth("S001-T01", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(refusal(string(data)), jsonText(c.want)) {
			t.Errorf("till feed ?%s: %d %s, want 400 naming %q", c.query, resp.StatusCode, data, c.want)
		}
	}
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("head office logged an ERROR for a client's mistake:\n%s", logged.String())
	}
	// The same requests, right, are answered.
	for _, path := range []string{"/v1/erp/reports/balances?card=2900000000018", "/v1/erp/reports/balances?limit=1", "/v1/erp/journal?cursor="} {
		if code, data := call("GET", path, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, data)
		}
	}
}

// jsonText is s as it reads once a JSON answer is decoded: bytes that are
// not UTF-8 come back as U+FFFD.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	var back string
	json.Unmarshal(b, &back)
	return back
}

// TestTillMayNotPushACorrection: an entry of kind correction from a till
// (only head office's ERP journal writes corrections) is rejected and kept
// on the chain: the card does not move, the accruals report counts it
// rejected, not among the ERP corrections, and the entry after it folds.
// A rejected entry's error quotes a huge number in at most 30 characters.
func TestTillMayNotPushACorrection(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now)
	secret, err := s.Enrol(context.Background(), "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	lots := func(pts string) []store.LotChange {
		return []store.LotChange{{Create: true, Delta: dec(pts), ActiveFrom: demoNow}}
	}
	const card = "2900000000049" // 1200 points on the demo
	b := lt.batch(
		store.Entry{CardCode: card, Kind: store.KindCorrection, Points: dec("500"), Lots: lots("500"), CreatedAt: demoNow},
		store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("10"), PurchaseKop: 1000, Lots: lots("10"), CreatedAt: demoNow},
	)
	body, _ := json.Marshal(b)
	// The third entry's points are -1e400: its error must not quote 401 digits.
	third := `{"id":"S001-T01-00000000000000000000000003","prev":"` + b.Entries[1].ID + `","check_id":"c3","card_code":"` + card +
		`","kind":"redemption","points":"-1e400","amount_kop":0,"purchase_kop":0,"withheld_kop":0,"written_off":"0","note":"","created_at":"2026-11-23T12:00:00+03:00"}`
	body = bytes.Replace(body, []byte(`}]}`), []byte(`},`+third+`]}`), 1)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	req, _ := http.NewRequest("POST", hs.URL+"/v1/till/journal", bytes.NewReader(body))
	req.SetBasicAuth("S001-T01", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res wire.BatchResult
	if err := json.NewDecoder(resp.Body).Decode(&res); resp.StatusCode != 200 || err != nil || len(res.Results) != 3 {
		t.Fatalf("push: %s %v %+v", resp.Status, err, res)
	}
	resp.Body.Close()
	got := map[string]wire.Result{}
	for _, r := range res.Results {
		got[r.ID] = r
	}
	if r := got[b.Entries[0].ID]; r.Status != wire.Rejected || !strings.Contains(r.Error, `kind "correction": only head office writes corrections`) {
		t.Errorf("a till's correction: %+v, want rejected saying only head office writes corrections", r)
	}
	if r := got[b.Entries[1].ID]; r.Status != wire.Applied {
		t.Errorf("the accrual after the refused correction: %+v, want applied", r)
	}
	r3 := got["S001-T01-00000000000000000000000003"]
	if r3.Status != wire.Rejected || !strings.Contains(r3.Error, "-1e+400: more than 1000000000 in magnitude") || len(r3.Error) > 300 {
		t.Errorf("points -1e400: %+v (%d characters), want rejected quoting -1e+400, not its 401 digits", r3, len(r3.Error))
	}
	if bal := balanceOf(t, s, card); bal != "1210" {
		t.Errorf("balance %s, want 1210 (1200 + the accrual; the till's correction applied to nothing)", bal)
	}
	erp := erpHTTP(t, s)
	code, data := erp("GET", "/v1/erp/reports/accruals?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z", "")
	var acc struct {
		Corrections string `json:"corrections"`
		Rejected    struct {
			Entries int `json:"entries"`
		} `json:"rejected"`
	}
	if code != 200 || json.Unmarshal([]byte(data), &acc) != nil || acc.Corrections != "0" || acc.Rejected.Entries != 2 {
		t.Errorf("accruals: %d %s, want corrections 0 and 2 rejected entries", code, data)
	}
	code, data = erp("GET", "/v1/erp/rejected", "")
	if code != 200 || !strings.Contains(data, b.Entries[0].ID) || !strings.Contains(data, "only head office writes corrections") {
		t.Errorf("rejected list: %d %s, want the till's correction with its reason", code, data)
	}
}

// openLogged is openTest logging into buf.
func openLogged(t *testing.T, buf io.Writer) *Server {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret",
		Clock: func() time.Time { return demoNow }, Logger: slog.New(slog.NewTextHandler(buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
