package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

const card13 = "2900000000018" // 300 spendable on the demo

// fault is one way the network between tills and head office misbehaves
// while the tills reconnect.
type fault struct {
	name      string
	skewA     time.Duration // till A's clock error
	skewB     time.Duration
	reconnect func(t *testing.T, e *env)
}

type env struct {
	h    *ho
	p    *proxy
	a, b *till
}

// syncAll runs rounds of SyncNow on both tills until both have pushed
// everything and seen each other's effects; errors are allowed while
// faults are on (the next round retries).
func syncAll(t *testing.T, e *env, rounds int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < rounds; i++ {
		e.a.c.SyncNow(ctx)
		e.b.c.SyncNow(ctx)
	}
	for _, tl := range []*till{e.a, e.b} {
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatalf("till %s: final sync: %v", tl.id, err)
		}
	}
}

var faults = []fault{
	{name: "clean", reconnect: func(t *testing.T, e *env) { syncAll(t, e, 1) }},
	{name: "lost-response-after-commit", reconnect: func(t *testing.T, e *env) {
		e.p.dropJournal.Store(3)
		ctx := context.Background()
		if err := e.a.c.SyncNow(ctx); err == nil {
			t.Fatal("SyncNow succeeded although the answer was dropped")
		}
		syncAll(t, e, 3)
	}},
	{name: "duplicated-batches", reconnect: func(t *testing.T, e *env) {
		e.p.dupJournal.Store(true)
		e.p.latency.Store(int64(2 * time.Millisecond))
		syncAll(t, e, 1)
	}},
	{name: "reordered-batches", reconnect: func(t *testing.T, e *env) {
		// Till A's backlog in batches of 2, sent last first, then the first
		// one twice; the watermark must not pass a gap.
		ctx := context.Background()
		pend, err := e.a.st.PendingChain(ctx, 100)
		if err != nil || len(pend) < 4 {
			t.Fatalf("pending chain: %d entries, %v", len(pend), err)
		}
		var batches []wire.Batch
		for i := 0; i < len(pend); i += 2 {
			b := wire.Batch{TillID: e.a.id}
			for _, p := range pend[i:min(i+2, len(pend))] {
				b.Entries = append(b.Entries, wire.Entry{Entry: p.Entry, Prev: p.Prev})
			}
			batches = append(batches, b)
		}
		for i := len(batches) - 1; i >= 1; i-- {
			res := post(t, e, e.a, batches[i])
			if res.FoldedThrough != "" {
				t.Fatalf("batch %d of %d sent first moved the watermark to %s past the missing batch 0", i, len(batches), res.FoldedThrough)
			}
		}
		res := post(t, e, e.a, batches[0])
		if want := pend[len(pend)-1].ID; res.FoldedThrough != want {
			t.Fatalf("after the gap was filled the watermark is %q, want the last entry %s", res.FoldedThrough, want)
		}
		if res = post(t, e, e.a, batches[0]); res.Results[0].Status != wire.Duplicate {
			t.Fatalf("batch 0 again: %+v, want duplicate", res.Results)
		}
		syncAll(t, e, 1) // the till resends all (never acked): duplicates
	}},
	{name: "latency", reconnect: func(t *testing.T, e *env) {
		// 20 ms before every request of till A reaches head office.
		e.p.latency.Store(int64(20 * time.Millisecond))
		syncAll(t, e, 1)
	}},
	{name: "connection-resets", reconnect: func(t *testing.T, e *env) {
		// Two of three requests of till A cut (before, during or after head
		// office's work); the syncs that fail are tried again.
		e.p.resets.Store(true)
		ctx := context.Background()
		failed := 0
		for i := 0; i < 6; i++ {
			if e.a.c.SyncNow(ctx) != nil {
				failed++
			}
		}
		if failed == 0 {
			t.Fatal("no sync failed although two requests of three were cut")
		}
		e.p.resets.Store(false)
		syncAll(t, e, 1)
	}},
	{name: "head-office-restart", reconnect: func(t *testing.T, e *env) {
		ctx := context.Background()
		if err := e.a.c.SyncNow(ctx); err != nil {
			t.Fatal(err)
		}
		e.h.restart(e.p)
		syncAll(t, e, 1)
	}},
	{name: "till-clocks-off-24h", skewA: 24 * time.Hour, skewB: -24 * time.Hour,
		reconnect: func(t *testing.T, e *env) { syncAll(t, e, 1) }},
}

func post(t *testing.T, e *env, tl *till, b wire.Batch) *wire.BatchResult {
	t.Helper()
	body, _ := json.Marshal(b)
	req, _ := http.NewRequest(http.MethodPost, e.p.URL()+"/v1/till/journal", bytes.NewReader(body))
	req.SetBasicAuth(tl.id, tl.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s %s", resp.Status, data)
	}
	r, err := wire.DecodeBatchResult(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTwoTillsPartitioned is the sync acceptance test, once per fault: head
// office loads the demo, two tills of two stores take their replica from
// the feed, head office becomes unreachable, both tills sell (spending 250
// of card 13's 300 points each, so together they overdraw it by 200), one
// returns a sale, then they reconnect through the fault. Afterwards head
// office's journal is exactly the union of the tills' journals, every
// balance is the demo balance plus the sum of the journal's points, both
// tills show head office's balances, the overdraft is flagged, and every
// fault ends in the same balances as the clean run.
func TestTwoTillsPartitioned(t *testing.T) {
	var baseline map[string]string
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			got := runScenario(t, f)
			if baseline == nil {
				baseline = got
				return
			}
			for card, b := range baseline {
				if got[card] != b {
					t.Errorf("card %s: balance %s after %s, %s after the clean run", card, got[card], f.name, b)
				}
			}
		})
	}
}

func runScenario(t *testing.T, f fault) map[string]string {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	initial := hoBalances(t, h)
	p := newProxy(t, h.hs.URL)
	e := &env{h: h, p: p, a: newTill(t, h, p, "S001-T01", "S001", f.skewA), b: newTill(t, h, p, "S002-T01", "S002", f.skewB)}
	for _, tl := range []*till{e.a, e.b} {
		if err := tl.c.SyncNow(ctx); err != nil {
			t.Fatalf("till %s: initial sync: %v", tl.id, err)
		}
		if b, err := tl.st.Spendable(ctx, card13, tl.now); err != nil || b.Spendable.String() != "300" {
			t.Fatalf("till %s after the initial feed: card 13 %+v, %v; want 300 spendable", tl.id, b, err)
		}
	}

	p.down.Store(true)
	e.a.sell(t, card13, powder("1"), "250")
	ret := e.a.sell(t, "2900000000049", basket(), "")
	e.a.sell(t, "2700000000014", basket(), "100")
	e.a.returnAll(t, "S001-T01-R1", ret)
	e.b.sell(t, card13, powder("1"), "250")
	e.b.sell(t, "2900000000025", basket(), "")
	for _, tl := range []*till{e.a, e.b} {
		if err := tl.c.SyncNow(ctx); err == nil {
			t.Fatalf("till %s synced while head office is unreachable", tl.id)
		}
		if st := tl.c.Status(); st.State != "failing" || st.Backlog == 0 || st.LastError == "" {
			t.Fatalf("till %s status while partitioned: %+v", tl.id, st)
		}
	}
	p.down.Store(false)
	f.reconnect(t, e)
	p.dupJournal.Store(false)

	// Head office's journal is the union of the tills' journals, entry for entry.
	union := map[string]string{}
	for _, tl := range []*till{e.a, e.b} {
		for _, en := range tl.journal(t) {
			if !en.Acked {
				t.Errorf("till %s: entry %s not acknowledged after sync", tl.id, en.ID)
			}
			union[en.ID] = canonical(t, en)
		}
		if st := tl.c.Status(); st.Backlog != 0 || st.State != "ok" {
			t.Errorf("till %s status after sync: %+v", tl.id, st)
		}
	}
	hoJournal := exportAll(t, e)
	if len(hoJournal) != len(union) {
		t.Errorf("head office holds %d entries, the tills %d", len(hoJournal), len(union))
		logExportBound(t, h)
	}
	for id, want := range union {
		if got, ok := hoJournal[id]; !ok {
			t.Errorf("entry %s missing at head office", id)
		} else if got != want {
			t.Errorf("entry %s differs:\n head office %s\n till        %s", id, got, want)
		}
	}

	// Balances: demo balance + Σ points of the union + debt the program's
	// negative-balance policy wrote off, on head office and on both tills.
	// Card 13's BONUS program forbids a negative balance, but its lots not
	// active yet (L-13-3's 200 from 4 December, the new accruals) cover
	// the 200-point overdraft: the balance stays above 0, so nothing is
	// written off and the card keeps the debt until they activate (still
	// flagged, below).
	sum := map[string]decimal.Decimal{}
	for _, en := range hoEntries(t, e) { // complete (caught up above)
		sum[en.CardCode] = sum[en.CardCode].Add(en.Points)
	}
	wos, err := h.srv.WriteOffs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wo := map[string]decimal.Decimal{}
	for _, w := range wos {
		wo[w.Card] = wo[w.Card].Add(w.Points.Decimal())
		if w.Card != card13 || w.Mode != "forbid" || w.Program != "BONUS" {
			t.Errorf("unexpected write-off %+v", w)
		}
	}
	var debt13 string
	h.srv.DB().QueryRow(ctx, `SELECT debt::text FROM cards WHERE code = $1`, card13).Scan(&debt13)
	if len(wos) != 0 || debt13 != "200" {
		t.Errorf("card 13 (BONUS, negative_balance forbid): write-offs %+v, debt %s; want none and the 200-point overdraft kept as debt", wos, debt13)
	}
	final := hoBalances(t, h)
	for card, b := range final {
		want := decimal.RequireFromString(initial[card]).Add(sum[card]).Add(wo[card])
		if !decimal.RequireFromString(b).Equal(want) {
			t.Errorf("card %s at head office: %s, want demo %s + journal %s + written off %s", card, b, initial[card], sum[card], wo[card])
		}
		for _, tl := range []*till{e.a, e.b} {
			tb, err := tl.st.Spendable(ctx, card, demoNow)
			if err != nil {
				t.Fatal(err)
			}
			if tb.Total.String() != b {
				t.Errorf("till %s shows card %s at %s, head office %s", tl.id, card, tb.Total, b)
			}
		}
	}
	// Watermarks: each till's last entry, and nothing left unfolded.
	var unfolded int
	h.srv.DB().QueryRow(ctx, `SELECT count(*) FROM journal WHERE NOT folded`).Scan(&unfolded)
	if unfolded != 0 {
		t.Errorf("%d entries left unfolded", unfolded)
	}
	for _, tl := range []*till{e.a, e.b} {
		es := tl.journal(t)
		if wm, _ := tl.st.FoldedThrough(ctx); wm != es[len(es)-1].ID {
			t.Errorf("till %s: folded_through %q, want its last entry %s", tl.id, wm, es[len(es)-1].ID)
		}
	}
	// The overdraft: 2 × 250 spent of 300 → 200 over, flagged once per overdrawing entry.
	ods, err := h.srv.Overdrafts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	over := decimal.Zero
	for _, o := range ods {
		if o.Card != card13 {
			t.Errorf("unexpected overdraft %+v", o)
		}
		over = over.Add(o.Points.Decimal())
	}
	t.Logf("balances: demo %v, after %v; %d journal entries; overdrafts %+v", initial, final, len(union), ods)
	if over.String() != "200" {
		t.Errorf("flagged overdraft of card 13: %s points in %d records, want 200", over, len(ods))
	}
	// No fault here touches PostgreSQL: a till's cut request must not pass
	// for a lost database connection (each would reset the pool).
	if n := e.h.srv.LostConnections(); n != 0 {
		t.Errorf("%d lost database connections counted under %s", n, f.name)
	}
	return final
}

// TestRunLoopBacksOffAndCatchesUp runs the background loop of both tills
// while head office is down (the wait grows and stays under the cap), then
// brings it back and waits for the backlog to drain.
func TestRunLoopBacksOffAndCatchesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, p, a := loadedTill(t, "S001-T02", nil)
	p.down.Store(true)
	a.sell(t, card13, powder("1"), "100")
	done := make(chan error, 1)
	go func() { done <- a.c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for a.c.Status().Failures < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("loop did not retry: %+v", a.c.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := a.c.Status()
	if wait := st.NextAttempt.Sub(a.now); st.State != "failing" || st.Backlog != 2 || wait > 80*time.Millisecond {
		t.Fatalf("status while down: %+v (next wait %v, cap 80ms)", st, wait)
	}
	// A sale goes through while the loop is failing.
	a.sell(t, "2900000000049", basket(), "")
	p.down.Store(false)
	for {
		st = a.c.Status()
		if st.State == "ok" && st.Backlog == 0 && st.Failures == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop did not catch up: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Pushed != 3 || st.Cursor == "" { // redemption + accrual, then an accrual
		t.Fatalf("status after catching up: %+v, want 3 pushed and a cursor", st)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}

// TestTillAuthorisation: wrong secret, another till's journal, another
// store's feed, ERP endpoints without the token.
func TestTillAuthorisation(t *testing.T) {
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	a := newTill(t, h, p, "S001-T03", "S001", 0)
	b := newTill(t, h, p, "S002-T03", "S002", 0)
	do := func(method, path, user, pass string, body any) int {
		var rd io.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		}
		req, _ := http.NewRequest(method, h.hs.URL+path, rd)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	batchOf := func(till string) wire.Batch { return wire.Batch{TillID: till, Entries: []wire.Entry{}} }
	for _, c := range []struct {
		name       string
		code, want int
	}{
		{"wrong secret", do("GET", "/v1/till/feed", a.id, b.secret, nil), 401},
		{"no credentials", do("GET", "/v1/till/feed", "", "", nil), 401},
		{"another till's journal", do("POST", "/v1/till/journal", a.id, a.secret, batchOf(b.id)), 403},
		{"another store's feed", do("GET", "/v1/till/feed?store=S002", a.id, a.secret, nil), 403},
		{"own feed", do("GET", "/v1/till/feed?store=S001", a.id, a.secret, nil), 200},
		{"erp without token", do("GET", "/v1/erp/reports/balances", "", "", nil), 401},
		{"erp with a till secret", do("GET", "/v1/erp/reports/balances", a.id, a.secret, nil), 401},
	} {
		if c.code != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, c.code, c.want)
		}
	}
	req, _ := http.NewRequest("GET", h.hs.URL+"/v1/erp/reports/balances", nil)
	req.Header.Set("Authorization", "Bearer "+erpToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("erp with token: %v %v", resp, err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func hoBalances(t testing.TB, h *ho) map[string]string {
	t.Helper()
	bs, err := h.srv.Balances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, b := range bs {
		out[b.Card] = b.Balance.String()
	}
	return out
}

// canonical is an entry's content as both sides must agree on it.
func canonical(t *testing.T, e store.Entry) string {
	t.Helper()
	e = e.InUTC()
	sort.Slice(e.Lots, func(i, j int) bool { return e.Lots[i].LotID < e.Lots[j].LotID })
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exportAll pages through the ERP journal export over HTTP, once it can
// give every entry head office holds (exportCaughtUp).
func exportAll(t *testing.T, e *env) map[string]string {
	t.Helper()
	exportCaughtUp(t, e.h)
	out := map[string]string{}
	for _, en := range hoEntries(t, e) {
		if _, dup := out[en.ID]; dup {
			t.Errorf("journal export gives entry %s twice", en.ID)
		}
		out[en.ID] = canonical(t, en.Entry)
	}
	return out
}

func hoEntries(t *testing.T, e *env) []wire.Entry {
	t.Helper()
	var out []wire.Entry
	cursor := ""
	for page := 0; page < 100; page++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/erp/journal?limit=4&cursor=%s", e.h.hs.URL, cursor), nil)
		req.Header.Set("Authorization", "Bearer "+erpToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ex struct {
			Entries []struct {
				TillID string          `json:"till_id"`
				Entry  json.RawMessage `json:"entry"`
			} `json:"entries"`
			Cursor string `json:"cursor"`
			More   bool   `json:"more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ex)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ex.Entries {
			var en wire.Entry
			if err := json.Unmarshal(x.Entry, &en); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(en.ID, x.TillID+"-") {
				t.Errorf("exported entry %s under till %s", en.ID, x.TillID)
			}
			out = append(out, en)
		}
		if !ex.More {
			return out
		}
		cursor = ex.Cursor
	}
	t.Fatal("journal export did not end")
	return nil
}

// TestRejectedEntryKeepsTheRest: a batch with one invalid entry stores the
// valid ones and answers the bad one "rejected", naming it; the bad one is
// kept as rejected on the chain, so the watermark passes it.
func TestRejectedEntryKeepsTheRest(t *testing.T) {
	ctx := context.Background()
	_, p, a := loadedTill(t, "S001-T60", nil)
	a.sell(t, card13, powder("1"), "100")
	pend, err := a.st.PendingChain(ctx, 10)
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending: %d, %v", len(pend), err)
	}
	b := wire.Batch{TillID: a.id}
	for _, pe := range pend {
		b.Entries = append(b.Entries, wire.Entry{Entry: pe.Entry, Prev: pe.Prev})
	}
	bad := b.Entries[1]
	bad.ID, bad.Prev, bad.Kind = a.id+"-"+strings.Repeat("Z", 26), b.Entries[1].ID, "gift"
	b.Entries = append(b.Entries, bad)
	res := post(t, &env{p: p}, a, b)
	got := map[string]string{}
	for _, r := range res.Results {
		got[r.ID] = r.Status
		if r.Status == wire.Rejected && !strings.Contains(r.Error, `unknown kind "gift"`) {
			t.Errorf("rejection does not say why: %+v", r)
		}
	}
	if got[pend[0].ID] != wire.Applied || got[pend[1].ID] != wire.Applied || got[bad.ID] != wire.Rejected {
		t.Fatalf("results %v, want the two real entries applied and the bad one rejected", got)
	}
	if res.FoldedThrough != bad.ID {
		t.Fatalf("watermark %q, want %s (the rejected entry kept on the chain)", res.FoldedThrough, bad.ID)
	}
}

// TestERPOverHTTP: import (YAML) twice, a refused import naming every bad
// record, a correction, the reports.
func TestERPOverHTTP(t *testing.T) {
	h := startHO(t, pgDSN(t))
	call := func(method, path, ctype string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, h.hs.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+erpToken)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	demo := mustRead(t, demoPath())
	if code, data := call("POST", "/v1/erp/import", "application/yaml", demo); code != 200 || !strings.Contains(string(data), `"cards":8`) {
		t.Fatalf("import: %d %s", code, data)
	}
	if code, data := call("POST", "/v1/erp/import", "application/yaml", demo); code != 200 || string(data) != "{\"catalog\":0,\"cards\":0,\"lots\":0}\n" {
		t.Fatalf("second import: %d %s, want nothing changed", code, data)
	}
	// Bad values are found first (record by record), then bad references
	// (looked up in PostgreSQL); each refusal lists every bad record.
	for _, c := range []struct{ body, want1, want2 string }{
		{`{"version":1,"cards":[{"code":"1","kind":"bonus","state":"lost"},{"code":"2","kind":"bonus","state":"gone"}]}`,
			`cards[0] code \"1\": state \"lost\"`, `cards[1] code \"2\": state \"gone\"`},
		{`{"version":1,"cards":[{"code":"1","kind":"nosuch","state":"active"}],"lots":[{"id":"L","card":"9","points":"1","accrued_at":"2026-01-01T00:00:00Z"}]}`,
			`cards[0] code \"1\": unknown card kind \"nosuch\"`, `lots[0] id \"L\": unknown card \"9\"`},
	} {
		code, data := call("POST", "/v1/erp/import", "", []byte(c.body))
		if code != 422 || !strings.Contains(string(data), c.want1) || !strings.Contains(string(data), c.want2) {
			t.Fatalf("bad import: %d %s", code, data)
		}
	}
	corr, _ := json.Marshal(map[string]any{"id": "fix-1", "card": card13, "points": "25", "reason": "complaint 17"})
	if code, data := call("POST", "/v1/erp/corrections", "", corr); code != 200 || !strings.Contains(string(data), `"entry_id":"ERP-fix-1"`) {
		t.Fatalf("correction: %d %s", code, data)
	}
	if code, data := call("GET", "/v1/erp/reports/balances", "", nil); code != 200 || !strings.Contains(string(data), `{"card":"2900000000018","balance":"525","debt":"0","expired":"0"}`) {
		t.Fatalf("balances: %d %s", code, data)
	}
	if code, data := call("GET", "/v1/erp/reports/expiring?days=20", "", nil); code != 200 || !strings.Contains(string(data), `"points":"100"`) {
		t.Fatalf("expiring: %d %s", code, data)
	}
	if code, _ := call("GET", "/v1/erp/reports/expiring", "", nil); code != 400 {
		t.Fatalf("expiring without days: %d, want 400", code)
	}
}

// TestReplacedTillStore: a till's SQLite file is lost and a new one starts
// under the same till id; its journal (first entry with no predecessor,
// later ids) folds on from the old watermark, and its balances agree with
// head office after the first load.
func TestReplacedTillStore(t *testing.T) {
	ctx := context.Background()
	h, p, old := loadedTill(t, "S001-T70", nil)
	old.sell(t, card13, powder("1"), "100")
	if err := old.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	// The replacement: same id, new file, enrolled again (new secret), clock later.
	fresh := newTill(t, h, p, "S001-T70", "S001", time.Minute)
	if err := fresh.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	fresh.sell(t, card13, powder("1"), "50")
	if err := fresh.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	es := fresh.journal(t)
	if wm, _ := fresh.st.FoldedThrough(ctx); wm != es[len(es)-1].ID {
		t.Fatalf("replacement till: watermark %q, want its last entry %s", wm, es[len(es)-1].ID)
	}
	b, _ := fresh.st.Spendable(ctx, card13, demoNow)
	if hb := hoBalances(t, h)[card13]; b.Total.String() != hb {
		t.Fatalf("card 13: replacement till %s, head office %s", b.Total, hb)
	}
}
