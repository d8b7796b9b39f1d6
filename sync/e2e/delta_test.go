package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
)

// erpCall sends an ERP request over HTTP and returns the status and body.
func erpCall(t *testing.T, h *ho, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.hs.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+erpToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// sameBalances checks that the till shows head office's balance of every
// card it should have, and returns how many cards it has.
func sameBalances(t *testing.T, h *ho, tl *till, cards []string) {
	t.Helper()
	hb := hoBalances(t, h)
	for _, card := range cards {
		b, err := tl.st.Spendable(context.Background(), card, demoNow)
		if err != nil {
			t.Errorf("till %s: card %s: %v", tl.id, card, err)
			continue
		}
		if b.Total.String() != hb[card] {
			t.Errorf("till %s: card %s at %s, head office %s", tl.id, card, b.Total, hb[card])
		}
	}
}

func hasCard(tl *till, card string) bool {
	_, err := tl.st.Spendable(context.Background(), card, demoNow)
	return err == nil
}

// TestDeltaInPagesFromAMassImport: a till holds the demo; an ERP job
// imports 90 cards with two lots each (90 change records, one a card) and the till
// pulls the delta in pages of 7 records. A transaction that changed card
// 13 before the import commits during the first page; between pages head
// office corrects a card already delivered; mid-delta head office becomes
// unreachable.
// The till shows its progress while paging, goes on from the last page it
// imported (not from the start), and ends with every card at head office's
// balance, the late commit and the correction included.
func TestDeltaInPagesFromAMassImport(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T81", func(o *client.Options) { o.DeltaPage = 7 })
	mass := &store.Replica{Version: 1}
	var codes []string
	for i := 0; i < 90; i++ {
		code := fmt.Sprintf("29100000%05d", i)
		codes = append(codes, code)
		mass.Cards = append(mass.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for j := 1; j <= 2; j++ {
			mass.Lots = append(mass.Lots, store.ReplicaLot{ID: fmt.Sprintf("M%d", j), Card: code,
				Points: checkout.MustPoints(fmt.Sprint(10 * j)), AccruedAt: demoNow.Add(-time.Hour)})
		}
	}
	// A long transaction writes card 13 before the import (its change row
	// comes first) and commits only after the delta's first page: no page
	// of this delta sees it; the delta from the first page's cursor must.
	long, err := h.srv.DB().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	for _, q := range []string{`UPDATE lots SET remaining = remaining - 1 WHERE card = $1 AND lot_id = 'L-13-1'`,
		`INSERT INTO changes (section, key) VALUES ('cards', $1)`} {
		if _, err := long.Exec(ctx, q, card13); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.srv.Import(ctx, mass); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reqs []string // "after" of every delta request
	var during client.Status
	p.onFeed = func(r *http.Request) {
		q := r.URL.Query()
		if q.Get("snapshot") == "1" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, q.Get("after"))
		switch len(reqs) {
		case 2: // the first page is in
			if err := long.Commit(ctx); err != nil {
				t.Error(err)
			}
			if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "between", Card: codes[0], Points: decimal.NewFromInt(5), Reason: "between pages"}); err != nil {
				t.Error(err)
			}
		case 4:
			during = tl.c.Status()
		case 6:
			p.down.Store(true) // the 7th page request gets no answer
		}
	}
	if err := tl.c.SyncNow(ctx); err == nil {
		t.Fatal("the delta went through although head office became unreachable")
	}
	mu.Lock()
	// The 4th page is asked for while the 3rd is imported.
	if !during.DeltaLoading || during.DeltaPages < 2 || during.DeltaPages > 3 || during.DeltaRecords == 0 {
		t.Errorf("status during the delta: loading %v, %d pages, %d records; want in progress, 2 or 3 pages", during.DeltaLoading, during.DeltaPages, during.DeltaRecords)
	}
	resumeFrom := len(reqs)
	mu.Unlock()
	p.down.Store(false)
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	first := reqs[resumeFrom]
	n := len(reqs)
	mu.Unlock()
	if first == "" {
		t.Errorf("after the interruption the delta started again from the beginning")
	}
	if n < 14 {
		t.Errorf("%d delta requests, want 90 records in pages of 7 and a delta after", n)
	}
	if st := tl.c.Status(); st.DeltaLoading || st.State != "ok" {
		t.Errorf("status after the delta: %+v", st)
	}
	// The delta from the first page's cursor brought the corrected card back.
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, tl, append(codes, card13))
	if b := hoBalances(t, h); b[codes[0]] != "35" || b[card13] != "499" {
		t.Fatalf("head office: corrected card %s (want 10 + 20 + 5), card 13 %s (want 500 − 1)", b[codes[0]], b[card13])
	}
}

// TestHomeCardScope: store S002 takes only its home cards. Set before its
// till is enrolled, with two cards assigned, its till loads those two
// (S001's till loads all eight); a change of another card does not reach
// it; once that card is assigned, it arrives with its whole state, changes
// from before the assignment included; narrowing a store that has tills is
// refused; widening S002 to all brings every card.
func TestHomeCardScope(t *testing.T) {
	ctx := context.Background()
	h := startHO(t, pgDSN(t))
	importDemo(t, h)
	if code, data := erpCall(t, h, "PUT", "/v1/erp/stores/S002/card-scope", map[string]string{"scope": "home"}); code != 200 ||
		!strings.Contains(string(data), `"scope":"home"`) {
		t.Fatalf("set scope: %d %s", code, data)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/stores/S002/cards", map[string]any{"cards": []string{card13, "2900000000025"}}); code != 200 ||
		string(data) != "{\"assigned\":2}\n" {
		t.Fatalf("assign: %d %s", code, data)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/stores/S002/cards", map[string]any{"cards": []string{"2900000000099"}}); code != 422 ||
		!strings.Contains(string(data), "2900000000099") {
		t.Fatalf("assign an unknown card: %d %s, want 422 naming it", code, data)
	}
	p := newProxy(t, h.hs.URL)
	b := newTillWith(t, h, p, "S002-T81", "S002", 0, func(o *client.Options) { o.DeltaPage = 2 })
	a := newTill(t, h, p, "S001-T82", "S001", 0)
	syncEach(t, a, b)
	all := []string{}
	for card := range hoBalances(t, h) {
		all = append(all, card)
	}
	if st := b.c.Status(); st.LoadedCards != 2 {
		t.Fatalf("S002's first load: %d cards, want its 2 home cards", st.LoadedCards)
	}
	if st := a.c.Status(); st.LoadedCards != 8 {
		t.Fatalf("S001's first load: %d cards, want all 8", st.LoadedCards)
	}
	sameBalances(t, h, b, []string{card13, "2900000000025"})
	sameBalances(t, h, a, all)
	const other = "2900000000049"
	if hasCard(b, other) {
		t.Fatalf("S002's till has card %s, not home to it", other)
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "c49", Card: other, Points: decimal.NewFromInt(77), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := b.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if hasCard(b, other) {
		t.Fatalf("a change of card %s reached S002, where it is not home", other)
	}
	if code, _ := erpCall(t, h, "POST", "/v1/erp/stores/S002/cards", map[string]any{"cards": []string{other}}); code != 200 {
		t.Fatal("assign")
	}
	if err := b.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, b, []string{other}) // 1200 + 77: its lots, the correction's lot among them
	if code, data := erpCall(t, h, "PUT", "/v1/erp/stores/S001/card-scope", map[string]string{"scope": "home"}); code != 409 {
		t.Fatalf("narrowing a store with tills: %d %s, want 409", code, data)
	}
	if code, data := erpCall(t, h, "PUT", "/v1/erp/stores/S002/card-scope", map[string]string{"scope": "all"}); code != 200 ||
		!strings.Contains(string(data), `"home_cards":3`) {
		t.Fatalf("widen: %d %s", code, data)
	}
	if err := b.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, h, b, all)
	if st := b.c.Status(); st.DeltaPages < 3 {
		t.Errorf("widening delivered in %d pages of 2, want the 5 new cards paged", st.DeltaPages)
	}
}

// TestBadFeedRecordDoesNotBlockTheFeed: head office's feed carries a
// product with a VAT rate the till does not know and a card of an unknown
// card kind (records the till must refuse; head office's own import would
// not write them, so they are put in with SQL, as a bug or a newer head
// office would), next to good changes. (Records that do not even decode:
// TestDecodeFeedLeavesOutBadRecords in sync/wire.) The till imports the good ones, advances
// its cursor, keeps the card's previous state whole, lists every refused
// record with its error in its status, and takes each once head office
// sends it right (the card as soon as its card kind arrives).
func TestBadFeedRecordDoesNotBlockTheFeed(t *testing.T) {
	ctx := context.Background()
	h, _, tl := loadedTill(t, "S001-T83", nil)
	db := h.srv.DB()
	for _, q := range []string{
		`UPDATE catalog SET body = jsonb_set(body::jsonb, '{vat}', '"vat99"')::json WHERE section = 'products' AND id = '1001'`,
		`UPDATE cards SET kind = 'nosuch' WHERE code = '2900000000025'`,
		`INSERT INTO changes (section, key) VALUES ('products', '1001'), ('cards', '2900000000025')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "good", Card: card13, Points: decimal.NewFromInt(25), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("one bad record blocked the feed: %v", err)
	}
	// (The cursor is not compared: another test's transaction anywhere in
	// the cluster may hold it where it was; the good change below shows the
	// feed went through, and SyncNow would have failed on an all-or-nothing
	// import.)
	st := tl.c.Status()
	if st.State != "ok" || st.Cursor == "" {
		t.Errorf("status after the bad feed: %+v", st)
	}
	want := map[string]string{
		`products id "1001"`:                       `vat "vat99"`,
		`cards code "2900000000025"`:               `unknown card kind "nosuch"`,
		`lots id "L-20-1" of card "2900000000025"`: `left out with its card`,
	}
	got := map[string]string{}
	for _, r := range st.Rejected {
		got[r.Section+" "+r.Key] = r.Error
	}
	for k, w := range want {
		found := false
		for gk, ge := range got {
			if strings.Contains(gk, k) && strings.Contains(ge, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("status does not list %s with %q: %v", k, w, got)
		}
	}
	if len(st.Rejected) != len(want) {
		t.Errorf("%d records rejected, want %d: %v", len(st.Rejected), len(want), got)
	}
	sameBalances(t, h, tl, []string{card13}) // the good change: 525
	if b, _ := tl.st.Spendable(ctx, "2900000000025", demoNow); b.Total.String() != "57" {
		t.Errorf("card 25 at the till: %s, want its previous state (57) whole", b.Total)
	}
	// Head office fixes things: the card kind arrives, the products are imported right.
	demo, _ := store.ParseReplicaFile(demoPath(), mustRead(t, demoPath()))
	fix := &store.Replica{Version: 1, CardKinds: []store.ReplicaCardKind{{ID: "nosuch", Name: "Новая", Kind: checkout.KindBonus, Program: "BONUS"}}}
	for _, pr := range demo.Products[:1] {
		pr.Name += " (fixed)"
		fix.Products = append(fix.Products, pr)
	}
	if _, err := h.srv.Import(ctx, fix); err != nil {
		t.Fatal(err)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tl.c.Status(); len(st.Rejected) != 0 {
		t.Fatalf("after head office fixed them, still rejected: %+v", st.Rejected)
	}
	if saved, err := tl.st.Rejected(ctx); err != nil || len(saved) != 0 {
		t.Fatalf("saved rejected records: %v, %v", saved, err)
	}
	sameBalances(t, h, tl, []string{"2900000000025"})
}

// TestResetFeedAfterRestore: head office restored from a backup hands out
// xids below the cursor a till holds; such a cursor is a feed reset, so the
// till's next sync loads the replica afresh and shows the change written
// since (before, its deltas skipped it until ERP reset the till). ERP's
// reset over HTTP gives a new epoch, and the till agrees with head office
// again; no reset after that.
func TestResetFeedAfterRestore(t *testing.T) {
	ctx := context.Background()
	h, _, tl := loadedTill(t, "S001-T84", nil)
	// What the till holds after head office lost its later history.
	if err := tl.st.SetSyncState(ctx, "feed_cursor", "999999999"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "after-restore", Card: card13, Points: decimal.NewFromInt(25), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tl.c.Status(); st.Resets != 1 {
		t.Fatalf("a cursor ahead of head office's database: %d resets, want 1", st.Resets)
	}
	if b, _ := tl.st.Spendable(ctx, card13, demoNow); b.Total.String() != "525" {
		t.Fatalf("after the reset the till sees card 13 at %s, want 525 (the change written since)", b.Total)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 || !strings.Contains(string(data), `"epoch":`) {
		t.Fatalf("reset: %d %s", code, data)
	}
	if code, _ := erpCall(t, h, "POST", "/v1/erp/tills/S009-T01/reset-feed", nil); code != 404 {
		t.Fatalf("reset of an unknown till: %d, want 404", code)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	st := tl.c.Status()
	if st.Resets != 2 || !strings.HasPrefix(st.Cursor, "e") {
		t.Fatalf("status after ERP's reset: resets %d, cursor %q; want 2 and a cursor of the new epoch", st.Resets, st.Cursor)
	}
	sameBalances(t, h, tl, []string{card13})
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "later", Card: card13, Points: decimal.NewFromInt(5), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tl.c.Status(); st.Resets != 2 {
		t.Fatalf("another reset happened: %+v", st)
	}
	sameBalances(t, h, tl, []string{card13})
}

// TestPagedDeltaKeepsBalancesExact: the till redeems 100 of card 13's 300
// offline, then syncs: the push folds the redemption at head office (card
// 13's change comes after a mass import's 90) and the delta comes in pages
// of 7. After every page the till must show card 13 at exactly 200
// spendable: a page that brought the new watermark without card 13's
// folded lots would count the redemption nowhere (300, a double-spend
// window for the rest of the delta).
func TestPagedDeltaKeepsBalancesExact(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T85", func(o *client.Options) { o.DeltaPage = 7 })
	mass := &store.Replica{Version: 1}
	for i := 0; i < 90; i++ {
		code := fmt.Sprintf("29200000%05d", i)
		mass.Cards = append(mass.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for j := 1; j <= 2; j++ {
			mass.Lots = append(mass.Lots, store.ReplicaLot{ID: fmt.Sprintf("M%d", j), Card: code,
				Points: checkout.MustPoints("10"), AccruedAt: demoNow.Add(-time.Hour)})
		}
	}
	if _, err := h.srv.Import(ctx, mass); err != nil {
		t.Fatal(err)
	}
	tl.sell(t, card13, powder("1"), "100")
	var mu sync.Mutex
	var seen []string
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("cursor") == "" {
			return
		}
		b, err := tl.st.Spendable(ctx, card13, tl.now)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Error(err)
			return
		}
		seen = append(seen, b.Spendable.String())
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 10 {
		t.Fatalf("%d delta pages, want the mass import paged", len(seen))
	}
	for i, s := range seen {
		if s != "200" {
			t.Errorf("before delta page %d card 13 showed %s spendable, want 200", i+1, s)
		}
	}
	if st := tl.c.Status(); st.Folded == "" {
		t.Errorf("status: %+v", st)
	}
}
