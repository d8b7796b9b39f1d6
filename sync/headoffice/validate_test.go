package headoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/pgtest"
)

// erpCall serves s over a loopback listener and returns a caller that
// sends ERP requests with a content type and an Authorization header of
// its own, answering the status, body and headers.
func erpCall(t *testing.T, s *Server) func(method, path, ctype, auth, body string) (int, string, http.Header) {
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return func(method, path, ctype, auth, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data), resp.Header
	}
}

// refusal is an error answer's text: "error" and each of "errors".
func refusal(body string) string {
	var a struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	json.Unmarshal([]byte(body), &a)
	return strings.Join(append([]string{a.Error}, a.Errors...), "\n")
}

// count runs a count(*) query.
func count(t *testing.T, s *Server, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestImportRefusesNUL: an ERP import (JSON or YAML) whose text holds
// U+0000 anywhere — a card kind's name, a store's address, a program's
// accrual rule, a card's holder, a lot's check id — is refused with 422
// naming the record and the field, and nothing of it is written (its
// other records neither); the correction that a stored NUL would break
// (it reads every card kind's program) still goes through afterwards. A
// literal backslash-u text is not NUL: it is imported and readable.
func TestImportRefusesNUL(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpCall(t, s)
	const auth = "Bearer erp-secret"
	catalog := count(t, s, `SELECT count(*) FROM catalog`)
	changes := count(t, s, `SELECT count(*) FROM changes`)

	prog := demoReplica(t).Programs[0] // BONUS: its coffee-beans rule names product 2101
	prog.Accrual[1].IncludeProducts[0] = "21\x0001"
	progJSON, _ := json.Marshal(prog)

	for _, c := range []struct{ name, ctype, body, want string }{
		{"card kind", "", `{"version":1,"card_kinds":[{"id":"k2","name":"bad\u0000","kind":"bonus","program":"BONUS"}],
			"stores":[{"id":"S009","name":"ok","timezone":"Europe/Moscow"}]}`, `card_kinds[0] id "k2": name holds U+0000`},
		{"store address", "", `{"version":1,"stores":[{"id":"S002","name":"Ленина 40","timezone":"Asia/Yekaterinburg","address":"x\u0000"}]}`,
			`stores[0] id "S002": address holds U+0000`},
		{"rule in a program", "", `{"version":1,"programs":[` + string(progJSON) + `]}`,
			`programs[0] id "BONUS": accrual[1].include_products[0] holds U+0000`},
		{"card holder", "", `{"version":1,"cards":[{"code":"3200000000001","kind":"bonus","state":"active","holder":"Ив\u0000"}]}`,
			`cards[0] code "3200000000001": holder holds U+0000`},
		{"lot check id", "", `{"version":1,"lots":[{"id":"Z1","card":"2900000000018","points":"5","accrued_at":"2026-11-01T10:00:00Z","check_id":"c\u0000"}]}`,
			`lots[0] id "Z1": check_id holds U+0000`},
		{"yaml card kind", "application/yaml", "version: 1\ncard_kinds:\n  - {id: k3, name: \"bad\\0\", kind: bonus, program: BONUS}\n",
			`card_kinds[0] id "k3": name holds U+0000`},
	} {
		code, body, _ := call(http.MethodPost, "/v1/erp/import", c.ctype, auth, c.body)
		if got := refusal(body); code != http.StatusUnprocessableEntity || !strings.Contains(got, c.want) || !strings.Contains(got, "nothing written") {
			t.Errorf("%s: %d %s, want 422 naming %q", c.name, code, body, c.want)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM catalog`); n != catalog {
		t.Errorf("catalog holds %d records after the refused imports, want %d", n, catalog)
	}
	if n := count(t, s, `SELECT count(*) FROM changes`); n != changes {
		t.Errorf("%d change rows after the refused imports, want %d", n, changes)
	}
	if n := count(t, s, `SELECT count(*) FROM cards WHERE code = '3200000000001'`); n != 0 {
		t.Errorf("the refused card was written")
	}

	// A backslash followed by u0000 is text, in JSON and in YAML.
	code, body, _ := call(http.MethodPost, "/v1/erp/import", "", auth,
		`{"version":1,"card_kinds":[{"id":"k4","name":"bad\\u0000","kind":"bonus","program":"BONUS"}]}`)
	if code != http.StatusOK {
		t.Fatalf("literal \\u0000 text: %d %s, want 200", code, body)
	}
	code, body, _ = call(http.MethodPost, "/v1/erp/import", "application/yaml", auth,
		"version: 1\ncard_kinds:\n  - {id: k5, name: 'bad\\u0000', kind: bonus, program: BONUS}\n")
	if code != http.StatusOK {
		t.Fatalf("yaml single-quoted \\u0000 text: %d %s, want 200", code, body)
	}
	var k4, k5 string
	if err := s.db.QueryRow(ctx, `SELECT (SELECT body->>'name' FROM catalog WHERE section = 'card_kinds' AND id = 'k4'),
		(SELECT body->>'name' FROM catalog WHERE section = 'card_kinds' AND id = 'k5')`).Scan(&k4, &k5); err != nil {
		t.Fatalf("read the imported names: %v", err)
	}
	if k4 != `bad\u0000` || k5 != `bad\u0000` {
		t.Errorf("names read back %q, %q; want the text bad\\u0000", k4, k5)
	}
	// The catalog is readable by everything that reads it.
	code, body, _ = call(http.MethodPost, "/v1/erp/corrections", "", auth, `{"id":"n1","card":"2900000000049","points":"1","reason":"x"}`)
	if code != http.StatusOK {
		t.Fatalf("correction after the refused imports: %d %s", code, body)
	}
}

// TestCorrectionRefusesNUL: a correction whose reason, id or card holds
// U+0000 is 422 naming the field, and no journal row is written (one would
// break every report reading the journal); the accruals report still
// answers.
func TestCorrectionRefusesNUL(t *testing.T) {
	s := openTest(t)
	if _, err := s.Import(context.Background(), demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpCall(t, s)
	for _, c := range []struct{ body, want string }{
		{`{"id":"n1","card":"2900000000049","points":"1","reason":"typo\u0000"}`, "reason holds U+0000"},
		{`{"id":"n\u0000","card":"2900000000049","points":"1","reason":"x"}`, "id holds U+0000"},
		{`{"id":"n3","card":"2900000000049\u0000","points":"1","reason":"x"}`, "card holds U+0000"},
	} {
		code, body, _ := call(http.MethodPost, "/v1/erp/corrections", "", "Bearer erp-secret", c.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 422 naming %q", c.body, code, body, c.want)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM journal`); n != 0 {
		t.Errorf("%d journal rows after refused corrections, want 0", n)
	}
	code, body, _ := call(http.MethodGet, "/v1/erp/reports/accruals?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z", "", "Bearer erp-secret", "")
	if code != http.StatusOK {
		t.Errorf("accruals report: %d %s", code, body)
	}
}

// TestCorrectionOnBrokenCatalogIs5xx: with a card kind head office cannot
// read (a NUL stored before imports refused it), a correction fails with
// 500 saying nothing was written, not 422 blaming the correction.
func TestCorrectionOnBrokenCatalogIs5xx(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO catalog (section, id, body) VALUES ('card_kinds', 'k2',
		'{"id":"k2","name":"bad\u0000","kind":"bonus","program":"BONUS"}')`); err != nil {
		t.Fatal(err)
	}
	call := erpCall(t, s)
	code, body, _ := call(http.MethodPost, "/v1/erp/corrections", "", "Bearer erp-secret", `{"id":"c1","card":"2900000000049","points":"1","reason":"x"}`)
	if code != http.StatusInternalServerError || !strings.Contains(body, "nothing written") || !strings.Contains(body, "c1") {
		t.Errorf("correction on a broken catalog: %d %s, want 500 naming the correction", code, body)
	}
	if n := count(t, s, `SELECT count(*) FROM journal`); n != 0 {
		t.Errorf("%d journal rows, want 0", n)
	}
}

// TestImportRefusesPointsOthersRefuse: an import's lot points and
// remaining and card debt pass the check corrections and till entries pass
// (wire.CheckPoints): more than 10⁹ in magnitude, more than 9 decimal
// places or finer than the card's program's scale is 422 naming the
// record, and nothing of the import is written. The program is the one
// the card will have: its own (in the file or head office's), else its
// kind's; a program with 2 decimal places takes 0.25.
func TestImportRefusesPointsOthersRefuse(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpCall(t, s)
	post := func(body string) (int, string) {
		code, b, _ := call(http.MethodPost, "/v1/erp/import", "", "Bearer erp-secret", body)
		return code, refusal(b)
	}
	cards := count(t, s, `SELECT count(*) FROM cards`)
	lots := count(t, s, `SELECT count(*) FROM lots`)
	code, body := post(`{"version":1,
		"cards":[{"code":"3200000000001","kind":"bonus","state":"active"},
			{"code":"3200000000002","kind":"bonus","state":"active","debt":"99999999999999999999999"},
			{"code":"3200000000003","kind":"bonus","state":"active","debt":"0.5"}],
		"lots":[{"id":"Z1","card":"3200000000001","points":"99999999999999999999","accrued_at":"2026-11-01T10:00:00Z"},
			{"id":"Z2","card":"3200000000001","points":"0.5","accrued_at":"2026-11-01T10:00:00Z"},
			{"id":"Z3","card":"3200000000001","points":"0.0000000000001","accrued_at":"2026-11-01T10:00:00Z"},
			{"id":"Z4","card":"2900000000018","points":"10","remaining":"2.5","accrued_at":"2026-11-01T10:00:00Z"},
			{"id":"Z5","card":"3200000000001","points":"1000000000","accrued_at":"2026-11-01T10:00:00Z"}]}`)
	for _, want := range []string{
		`cards[1] code "3200000000002": program BONUS: debt 99999999999999999999999: more than 1000000000 in magnitude`,
		`cards[2] code "3200000000003": program BONUS: debt 0.5: finer than the program's 0 decimal places`,
		`lots[0] id "Z1": program BONUS: points 99999999999999999999: more than 1000000000 in magnitude`,
		`lots[1] id "Z2": program BONUS: points 0.5: finer than the program's 0 decimal places`,
		`lots[2] id "Z3": program BONUS: points 0.0000000000001: more than 9 decimal places`,
		// A card head office holds, not in the file.
		`lots[3] id "Z4": program BONUS: remaining 2.5: finer than the program's 0 decimal places`,
	} {
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
			t.Errorf("import of numbers others refuse: %d %s\nwant 422 with %s", code, body, want)
		}
	}
	if strings.Contains(body, `Z5`) {
		t.Errorf("a lot of exactly 10^9 points was refused: %s", body)
	}
	if n, m := count(t, s, `SELECT count(*) FROM cards`), count(t, s, `SELECT count(*) FROM lots`); n != cards || m != lots {
		t.Errorf("after the refused import: %d cards, %d lots; want %d, %d", n, m, cards, lots)
	}
	// The bound is the correction's own.
	code, body, _ = call(http.MethodPost, "/v1/erp/corrections", "", "Bearer erp-secret", `{"id":"big","card":"2900000000018","points":"1000000001","reason":"x"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "more than 1000000000 in magnitude") {
		t.Errorf("correction of 10^9+1: %d %s", code, body)
	}

	// A program of 2 decimal places, given in the file, through a kind in
	// the file and as a card's own program.
	fine := demoReplica(t).Programs[0]
	fine.ID, fine.Promotions, fine.PointRounding = "FINE", nil, checkout.Rounding{Scale: 2}
	r := &store.Replica{Version: 1, Programs: []checkout.Program{fine},
		CardKinds: []store.ReplicaCardKind{{ID: "fine", Name: "Точная", Kind: checkout.KindBonus, Program: "FINE"}},
		Cards: []store.ReplicaCard{{Code: "3300000000001", Kind: "fine", State: checkout.StateActive, Debt: checkout.PointsOf(dec("0.25"))},
			{Code: "3300000000002", Kind: "bonus", Program: "FINE", State: checkout.StateActive}},
		Lots: []store.ReplicaLot{{ID: "F1", Card: "3300000000001", Points: checkout.PointsOf(dec("1.25")), AccruedAt: demoNow.Add(-48e9)},
			{ID: "F2", Card: "3300000000002", Points: checkout.PointsOf(dec("0.75")), AccruedAt: demoNow.Add(-48e9)}}}
	data, _ := json.Marshal(r)
	if code, body := post(string(data)); code != http.StatusOK {
		t.Fatalf("import on a 2-place program: %d %s", code, body)
	}
	// The stored card's program, read from head office: 0.125 is finer.
	if code, body := post(`{"version":1,"lots":[{"id":"F3","card":"3300000000002","points":"0.125","accrued_at":"2026-11-01T10:00:00Z"}]}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `program FINE: points 0.125: finer than the program's 2 decimal places`) {
		t.Errorf("lot finer than a stored card's program: %d %s", code, body)
	}
}

// syncBuffer is a log sink the server's goroutines may write to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestERPClientMistakesAre4xx: the client's mistakes get 4xx with a clear
// error, and head office logs no ERROR for them: an import with
// folded_through is 422; assigning 0 or more than 100,000 cards, a store
// id no store can have, an unknown field, trailing data after the object
// and a field name in another case are 400; a correction body over 1 MB is
// 413, as the journal endpoint answers; nothing is written by any of them.
func TestERPClientMistakesAre4xx(t *testing.T) {
	var logged syncBuffer
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret",
		Clock: func() time.Time { return demoNow }, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(context.Background(), demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpCall(t, s)
	many := `{"cards":["` + strings.Repeat(`2900000000018","`, 100000) + `2900000000018"]}`
	huge := `{"id":"x","card":"2900000000018","points":"1","reason":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/erp/import", `{"version":1,"folded_through":{"S001-T01":"S001-T01-01JABCDEFGHJKMNPQRSTVWXYZ0"}}`, 422, "folded_through is head office's"},
		{"POST", "/v1/erp/stores/S001/cards", `{"cards":[]}`, 400, "0 cards, want 1-100000"},
		{"POST", "/v1/erp/stores/S001/cards", many, 400, "100001 cards, want 1-100000"},
		{"POST", "/v1/erp/stores/S001/cards", `{"cards":["2900000000018"],"typo_field":1}`, 400, `unknown field "typo_field"`},
		{"POST", "/v1/erp/stores/S001/cards", `{"cards":["2900000000018",""]}`, 400, `card 2 is ""`},
		{"POST", "/v1/erp/stores/a%20b/cards", `{"cards":["2900000000018"]}`, 400, `bad store id "a b"`},
		{"PUT", "/v1/erp/stores/a%20b/card-scope", `{"scope":"all"}`, 400, `bad store id "a b"`},
		{"GET", "/v1/erp/stores/a%20b/card-scope", ``, 400, `bad store id "a b"`},
		{"PUT", "/v1/erp/stores/S001/card-scope", `{"scope":"most"}`, 400, `"most": want all or home`},
		{"POST", "/v1/erp/corrections", huge, 413, "correction: body larger than 1048576 bytes"},
		{"POST", "/v1/erp/corrections", `{"id":"t1","card":"2900000000049","points":"5","reason":"x"} {"points":"5000"}`, 400, "data after the JSON object"},
		{"POST", "/v1/erp/corrections", `{"ID":"t2","Card":"2900000000049","POINTS":"5","Reason":"x"}`, 400, `field "Card": names are case-sensitive, want "card"`},
		{"POST", "/v1/erp/tills", `{"till_id":"S001-T09","store_id":"S001"} garbage`, 400, "enrol: data after the JSON object"},
		{"POST", "/v1/erp/conflicts/x", `{"keep":"head_office","reason":"r"}{}`, 400, "settle conflict: data after the JSON object"},
	} {
		code, body, hdr := call(c.method, c.path, "", "Bearer erp-secret", c.body)
		if got := refusal(body); code != c.code || !strings.Contains(got, c.want) || hdr.Get("Content-Type") != "application/json" {
			if len(body) > 300 {
				body = body[:300] + "…"
			}
			t.Errorf("%s %s: %d %s, want %d naming %q", c.method, c.path, code, body, c.code, c.want)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM journal`, `SELECT count(*) FROM card_stores`, `SELECT count(*) FROM tills`,
		`SELECT count(*) FROM store_card_scope`} {
		if n := count(t, s, q); n != 0 {
			t.Errorf("%s = %d after refused requests, want 0", q, n)
		}
	}
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("head office logged an ERROR for a client's mistake:\n%s", logged.String())
	}
	// The same requests, right, go through.
	if code, body, _ := call("POST", "/v1/erp/stores/S001/cards", "", "Bearer erp-secret", `{"cards":["2900000000018"]}`); code != 200 || !strings.Contains(body, `"assigned":1`) {
		t.Errorf("assign: %d %s", code, body)
	}
	if code, body, _ := call("POST", "/v1/erp/corrections", "", "Bearer erp-secret", `{"id":"t1","card":"2900000000049","points":"5","reason":"x"}`); code != 200 {
		t.Errorf("correction: %d %s", code, body)
	}
}

// TestCardScopeOfUnknownStoreIs404: a store that is not in the catalog has
// no scope and no home cards: GET and PUT of its scope and assigning cards
// to it are 404 naming it, and nothing is written (no home row, no change
// row a till would be sent); the CLI's calls (SetCardScope, AssignCards,
// StoreCardScope) refuse it the same way.
func TestCardScopeOfUnknownStoreIs404(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	changes := count(t, s, `SELECT count(*) FROM changes`)
	call := erpCall(t, s)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/erp/stores/NOPE/cards", `{"cards":["2900000000018"]}`},
		{"GET", "/v1/erp/stores/NOPE/card-scope", ``},
		{"PUT", "/v1/erp/stores/NOPE/card-scope", `{"scope":"all"}`},
		{"PUT", "/v1/erp/stores/NOPE/card-scope", `{"scope":"home"}`},
	} {
		code, body, _ := call(c.method, c.path, "", "Bearer erp-secret", c.body)
		if got := refusal(body); code != http.StatusNotFound || !strings.Contains(got, `unknown store "NOPE": not in head office's catalog`) {
			t.Errorf("%s %s: %d %s, want 404 naming the store", c.method, c.path, code, body)
		}
	}
	if _, err := s.AssignCards(ctx, "NOPE", []string{"2900000000018"}); !errors.Is(err, ErrUnknownStore) {
		t.Errorf("AssignCards to NOPE: %v, want ErrUnknownStore", err)
	}
	if err := s.SetCardScope(ctx, "NOPE", ScopeHome); !errors.Is(err, ErrUnknownStore) {
		t.Errorf("SetCardScope of NOPE: %v, want ErrUnknownStore", err)
	}
	if _, err := s.StoreCardScope(ctx, "NOPE"); !errors.Is(err, ErrUnknownStore) {
		t.Errorf("StoreCardScope of NOPE: %v, want ErrUnknownStore", err)
	}
	if n := count(t, s, `SELECT count(*) FROM card_stores`) + count(t, s, `SELECT count(*) FROM store_card_scope`); n != 0 {
		t.Errorf("%d home or scope rows written for an unknown store", n)
	}
	if n := count(t, s, `SELECT count(*) FROM changes`); n != changes {
		t.Errorf("%d change rows after the refusals, want %d", n, changes)
	}
	// A store in the catalog works.
	if code, body, _ := call("PUT", "/v1/erp/stores/S002/card-scope", "", "Bearer erp-secret", `{"scope":"home"}`); code != 200 ||
		!strings.Contains(body, `"scope":"home"`) {
		t.Errorf("scope of S002: %d %s", code, body)
	}
}

// TestUnroutedRequestsAnswerJSON: a path head office does not serve is 404
// and a method it does not serve on a path is 405 (with Allow), both JSON
// errors like every other answer; the bearer scheme is case-insensitive.
func TestUnroutedRequestsAnswerJSON(t *testing.T) {
	s := openTest(t)
	call := erpCall(t, s)
	code, body, hdr := call("GET", "/v1/erp/nosuch", "", "Bearer erp-secret", "")
	if code != http.StatusNotFound || hdr.Get("Content-Type") != "application/json" || !strings.Contains(refusal(body), "no endpoint /v1/erp/nosuch") {
		t.Errorf("unknown path: %d %q %s, want a 404 JSON error", code, hdr.Get("Content-Type"), body)
	}
	code, body, hdr = call("GET", "/v1/erp/maintain", "", "Bearer erp-secret", "")
	if code != http.StatusMethodNotAllowed || hdr.Get("Content-Type") != "application/json" || !strings.Contains(hdr.Get("Allow"), "POST") ||
		!strings.Contains(refusal(body), "GET /v1/erp/maintain: method not allowed (allowed: POST)") {
		t.Errorf("wrong method: %d %q allow %q %s, want a 405 JSON error", code, hdr.Get("Content-Type"), hdr.Get("Allow"), body)
	}
	if code, body, _ := call("GET", "/v1/erp/reports/overdrafts", "", "bearer erp-secret", ""); code != http.StatusOK {
		t.Errorf("lower-case bearer: %d %s, want 200", code, body)
	}
	if code, _, _ := call("GET", "/v1/erp/reports/overdrafts", "", "Bearer wrong", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
}
