package headoffice

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// lateFixture is head office on a clock the test moves, with the demo and
// cards of kind bonus (program BONUS: scale 0, negative balance forbid),
// each with the lots given, and till S001-T01 enrolled.
func lateFixture(t *testing.T, now *time.Time, lots ...store.ReplicaLot) *Server {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Clock: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	extra := &store.Replica{Version: 1, Lots: lots}
	seen := map[string]bool{}
	for _, l := range lots {
		if !seen[l.Card] {
			seen[l.Card] = true
			extra.Cards = append(extra.Cards, store.ReplicaCard{Code: l.Card, Kind: "bonus", State: checkout.StateActive})
		}
	}
	if _, err := s.Import(ctx, extra); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	return s
}

// lateTill numbers and chains the entries it pushes as till S001-T01 (or
// till, enrolled by the test).
type lateTill struct {
	till string
	n    int
	prev string
}

// batch gives the entries ids, chain links, a check id (when unset) and
// created lots their entry's id.
func (lt *lateTill) batch(es ...store.Entry) *wire.Batch {
	till := cmp.Or(lt.till, "S001-T01")
	b := &wire.Batch{TillID: till}
	for _, e := range es {
		lt.n++
		e.ID = fmt.Sprintf("%s-%026d", till, lt.n)
		if e.CheckID == "" {
			e.CheckID = e.ID
		}
		for i := range e.Lots {
			if e.Lots[i].Create {
				e.Lots[i].LotID = e.ID
			}
		}
		b.Entries = append(b.Entries, wire.Entry{Entry: e, Prev: lt.prev})
		lt.prev = e.ID
	}
	return b
}

func (lt *lateTill) push(t *testing.T, s *Server, es ...store.Entry) *wire.BatchResult {
	t.Helper()
	res, err := s.Ingest(context.Background(), lt.batch(es...))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func lot(card, id, points string, accrued time.Time, expires *time.Time) store.ReplicaLot {
	return store.ReplicaLot{ID: id, Card: card, Points: checkout.MustPoints(points), AccruedAt: accrued, ExpiresAt: expires}
}

// spendFrom is check's redemption of pts from lot of card, and giveBack
// its return's reversal, both at demoNow.
func spendFrom(card, lot, check, pts string) store.Entry {
	return store.Entry{CheckID: check, CardCode: card, Kind: store.KindRedemption, Points: dec("-" + pts),
		AmountKop: 100, Lots: []store.LotChange{{LotID: lot, Delta: dec("-" + pts)}}, CreatedAt: demoNow}
}

func giveBack(card, lot, check, pts string) store.Entry {
	return store.Entry{CheckID: check, CardCode: card, Kind: store.KindReversal, Points: dec(pts),
		AmountKop: -100, Lots: []store.LotChange{{LotID: lot, Delta: dec(pts)}}, CreatedAt: demoNow}
}

// TestExpiryBeforeALatePush: a till spends 50 of a lot before it expires
// and pushes after head office's expiry ran; the 50 come out of what
// expiry took, not out of the card's other lot (which would take them
// twice). A sale's accrual lot that expires and is then returned is taken
// back from what expiry took too. A redemption dated after the expiry
// (a till clock behind) is still taken from the other lots.
func TestExpiryBeforeALatePush(t *testing.T) {
	now := demoNow
	soon := demoNow.Add(time.Hour)
	at := demoNow.Add(-30 * 24 * time.Hour)
	s := lateFixture(t, &now,
		lot("3400000000001", "A1", "100", at, &soon), lot("3400000000001", "A2", "100", at, nil),
		lot("3400000000002", "B2", "100", at, nil))
	var lt lateTill
	spend := store.Entry{CardCode: "3400000000001", Kind: store.KindRedemption, Points: dec("-50"), AmountKop: 5000,
		Lots: []store.LotChange{{LotID: "A1", Delta: dec("-50")}}, CreatedAt: demoNow}
	accrue := store.Entry{CardCode: "3400000000002", Kind: store.KindAccrual, Points: dec("30"), PurchaseKop: 30000,
		Lots: []store.LotChange{{Create: true, Delta: dec("30"), ActiveFrom: demoNow, ExpiresAt: soon}}, CreatedAt: demoNow}
	// The accrual is pushed at once, the spend is not.
	res := lt.push(t, s, accrue)
	accrualLot := res.FoldedThrough
	if b := balanceOf(t, s, "3400000000002"); b != "130" {
		t.Fatalf("card 2 after the accrual: %s, want 130", b)
	}
	spendBatch := lt.batch(spend)
	now = demoNow.Add(2 * time.Hour)
	if st, err := s.Maintain(context.Background()); err != nil || st.Expired != 3 {
		t.Fatalf("maintain: %+v, %v; want A1, the accrual's lot and the demo's lapsed L-13-0 expired", st, err)
	}
	if _, err := s.Ingest(context.Background(), spendBatch); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, s, "3400000000001"); b != "100" {
		t.Fatalf("card 1 after the late spend: %s, want 100 (A2 untouched: the 50 were spent before A1 expired)", b)
	}
	var expired string
	s.db.QueryRow(context.Background(), `SELECT expired::text FROM lots WHERE lot_id = 'A1'`).Scan(&expired)
	if expired != "50" {
		t.Fatalf("A1 expired %s, want 50 (100 lapsed, 50 of them spent before)", expired)
	}
	if cb, err := s.CardBalanceOf(context.Background(), "3400000000001"); err != nil || cb.Expired.String() != "50" {
		t.Fatalf("balances report of card 1: %+v, %v; want 50 expired", cb, err)
	}
	// The sale on card 2 is returned after its lot expired.
	lt.push(t, s, store.Entry{CardCode: "3400000000002", Kind: store.KindReversal, Points: dec("-30"), PurchaseKop: -30000,
		Lots: []store.LotChange{{LotID: accrualLot, Delta: dec("-30")}}, CreatedAt: now})
	if b := balanceOf(t, s, "3400000000002"); b != "100" {
		t.Fatalf("card 2 after returning the expired accrual: %s, want 100", b)
	}
	// A till whose clock is behind spends from A1 after it expired: that
	// is an overdraft, taken from A2.
	lt.push(t, s, store.Entry{CardCode: "3400000000001", Kind: store.KindRedemption, Points: dec("-20"), AmountKop: 2000,
		Lots: []store.LotChange{{LotID: "A1", Delta: dec("-20")}}, CreatedAt: now})
	if b := balanceOf(t, s, "3400000000001"); b != "80" {
		t.Fatalf("card 1 after a spend dated after the expiry: %s, want 80", b)
	}
}

// TestReturnTakesBackTheWriteOff: two tills spend 250 each of a card's
// 300 offline; folding the second writes off the 200 it overdrew (BONUS
// forbids debt). Returning that second sale gives back only the 50 it
// really took, in two partial returns: the first 100 returned take back
// the write-off, then the rest; the write-offs report shows the return.
func TestReturnTakesBackTheWriteOff(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now, lot("3400000000003", "C1", "300", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	redeem := func(check, pts string) store.Entry { return spendFrom("3400000000003", "C1", check, pts) }
	back := func(check, pts string) store.Entry { return giveBack("3400000000003", "C1", check, pts) }
	lt.push(t, s, redeem("check-1", "250"), redeem("check-2", "250"))
	if b := balanceOf(t, s, "3400000000003"); b != "0" {
		t.Fatalf("after both spends: %s, want 0 (200 written off)", b)
	}
	lt.push(t, s, back("check-2", "100"))
	if b := balanceOf(t, s, "3400000000003"); b != "0" {
		t.Fatalf("after returning 100 of check 2: %s, want 0 (the 100 were forgiven, not paid)", b)
	}
	lt.push(t, s, back("check-2", "150"))
	if b := balanceOf(t, s, "3400000000003"); b != "50" {
		t.Fatalf("after returning all of check 2: %s, want 50 (what the sale really took)", b)
	}
	wos, err := s.WriteOffs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range wos {
		if w.Card == "3400000000003" {
			got = append(got, w.Mode+" "+w.Points.String())
		}
	}
	if strings.Join(got, ", ") != "returned -100, returned -100, forbid 200" {
		t.Fatalf("write-offs of the card, newest first: %v", got)
	}
	// A return of check 1, which wrote nothing off, gives its points back.
	lt.push(t, s, back("check-1", "250"))
	if b := balanceOf(t, s, "3400000000003"); b != "300" {
		t.Fatalf("after returning check 1 too: %s, want 300", b)
	}
}

// TestRejectedEntryDoesNotStopTheChain: over HTTP, the first of three
// entries has points of more than 9 decimal places and the second text
// with U+0000; both are answered rejected and kept, the third is applied
// and folded, and the watermark passes all three. Support lists both,
// the reports still read the journal, and sending the batch again answers
// the two duplicates (the till acknowledges them).
func TestRejectedEntryDoesNotStopTheChain(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now, lot("3400000000004", "D1", "100", demoNow.Add(-48*time.Hour), nil))
	secret, err := s.Enrol(context.Background(), "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	accrue := func(pts, note string) store.Entry {
		return store.Entry{CardCode: "3400000000004", Kind: store.KindAccrual, Points: dec(pts), PurchaseKop: 1000, Note: note,
			Lots: []store.LotChange{{Create: true, Delta: dec(pts), ActiveFrom: demoNow}}, CreatedAt: demoNow}
	}
	b := lt.batch(accrue("0.0000000005", ""), accrue("7", "a\x00b"), accrue("10", ""))
	body, _ := json.Marshal(b)
	erp := erpHTTP(t, s)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	pushHTTP := func() wire.BatchResult {
		t.Helper()
		req, _ := http.NewRequest("POST", hs.URL+"/v1/till/journal", strings.NewReader(string(body)))
		req.SetBasicAuth("S001-T01", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res wire.BatchResult
		if err := json.NewDecoder(resp.Body).Decode(&res); resp.StatusCode != 200 || err != nil {
			t.Fatalf("push: %s %v", resp.Status, err)
		}
		return res
	}
	res := pushHTTP()
	got := map[string]wire.Result{}
	for _, r := range res.Results {
		got[r.ID] = r
	}
	for i, want := range []string{"more than 9 decimal places", "U+0000", ""} {
		r := got[b.Entries[i].ID]
		if want == "" && r.Status != wire.Applied || want != "" && (r.Status != wire.Rejected || !strings.Contains(r.Error, want) || !strings.Contains(r.Error, "kept at head office")) {
			t.Errorf("entry %d: %+v, want %q", i, r, want)
		}
	}
	if res.FoldedThrough != b.Entries[2].ID {
		t.Fatalf("folded through %q, want the third entry %s", res.FoldedThrough, b.Entries[2].ID)
	}
	if bal := balanceOf(t, s, "3400000000004"); bal != "110" {
		t.Fatalf("balance %s, want 110 (only the third entry applied)", bal)
	}
	code, data := erp("GET", "/v1/erp/rejected", "")
	var rej RejectedPage
	if code != 200 || json.Unmarshal([]byte(data), &rej) != nil || len(rej.Rejected) != 2 || rej.More {
		t.Fatalf("rejected list: %d %s", code, data)
	}
	for _, r := range rej.Rejected {
		if r.TillID != "S001-T01" || r.Reason == "" || strings.Contains(string(r.Entry), `\u0000`) {
			t.Errorf("rejected entry %+v: want its till, why, and no U+0000 kept", r)
		}
	}
	if code, data := erp("GET", "/v1/erp/reports/accruals?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z", ""); code != 200 {
		t.Fatalf("accruals report after a rejected entry: %d %s", code, data)
	}
	again := pushHTTP()
	if n := strings.Count(fmt.Sprint(again.Results), wire.Duplicate); n != 3 {
		t.Fatalf("the batch again: %+v, want 3 duplicates", again.Results)
	}
}

// TestEntryDatedAheadKeepsTheHistory: an entry from a till whose clock is
// a year ahead is applied, but counted into the card's purchase history
// now: the month that decides the card's tier is not wiped.
func TestEntryDatedAheadKeepsTheHistory(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now, lot("3400000000005", "E1", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	sale := func(at time.Time) store.Entry {
		return store.Entry{CardCode: "3400000000005", Kind: store.KindAccrual, Points: dec("5"), PurchaseKop: 50000,
			Lots: []store.LotChange{{Create: true, Delta: dec("5"), ActiveFrom: at}}, CreatedAt: at}
	}
	lt.push(t, s, sale(demoNow.Add(-time.Hour)), sale(demoNow.AddDate(1, 0, 0)))
	var hist string
	s.db.QueryRow(context.Background(), `SELECT history::text FROM cards WHERE code = '3400000000005'`).Scan(&hist)
	var h store.CardHistory
	if err := json.Unmarshal([]byte(hist), &h); err != nil {
		t.Fatal(err)
	}
	if h.Month != "2026-11" || h.PurchasesMonth.String() != "1000.00" {
		t.Fatalf("history %s, want November 2026 with both purchases (1000.00)", hist)
	}
}

// TestTillsReportShowsAGap: a till's second batch arrives before its
// first; the tills report shows its entries waiting behind the gap, and
// nothing waiting once the first batch comes. A rejected entry is
// counted.
func TestTillsReportShowsAGap(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now, lot("3400000000006", "F1", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	accrue := func(pts string) store.Entry {
		return store.Entry{CardCode: "3400000000006", Kind: store.KindAccrual, Points: dec(pts), PurchaseKop: 1000,
			Lots: []store.LotChange{{Create: true, Delta: dec(pts), ActiveFrom: demoNow}}, CreatedAt: demoNow}
	}
	first, second := lt.batch(accrue("1")), lt.batch(accrue("2"), accrue("0.0000000005"))
	erp := erpHTTP(t, s)
	report := func() TillState {
		t.Helper()
		code, data := erp("GET", "/v1/erp/reports/tills", "")
		var ts []TillState
		if code != 200 || json.Unmarshal([]byte(data), &ts) != nil || len(ts) != 1 {
			t.Fatalf("tills report: %d %s", code, data)
		}
		return ts[0]
	}
	data, _ := json.Marshal(second)
	decoded, err := wire.DecodeBatch(data) // refuses the 10 decimal places
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), decoded); err != nil {
		t.Fatal(err)
	}
	if r := report(); r.TillID != "S001-T01" || r.Waiting != 2 || r.WaitingSince == nil || r.FoldedThrough != "" || r.Rejected != 1 {
		t.Fatalf("with the first batch missing: %+v, want 2 waiting (1 of them rejected) after an empty watermark", r)
	}
	if _, err := s.Ingest(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if r := report(); r.Waiting != 0 || r.WaitingSince != nil || r.FoldedThrough != second.Entries[1].ID || r.Rejected != 1 {
		t.Fatalf("after the first batch: %+v, want nothing waiting, folded through %s", r, second.Entries[1].ID)
	}
	if b := balanceOf(t, s, "3400000000006"); b != "103" {
		t.Fatalf("balance %s, want 103", b)
	}
}

// TestCorrectionIDsAndRetries: an id is up to 64 characters, not bytes
// (Cyrillic ids are support's), and holds no control character; a retry
// writing expires_at in another zone is the same correction.
func TestCorrectionIDsAndRetries(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	cyr := strings.Repeat("ж", 40)
	if _, err := s.Correct(ctx, Correction{ID: cyr, Card: "2900000000018", Points: dec("5"), Reason: "жалоба"}); err != nil {
		t.Fatalf("a 40-character Cyrillic id: %v", err)
	}
	if _, err := s.Correct(ctx, Correction{ID: "a\rb", Card: "2900000000018", Points: dec("5"), Reason: "test"}); err == nil || !strings.Contains(err.Error(), "control") {
		t.Fatalf("an id with CR: %v, want refused", err)
	}
	exp := demoNow.AddDate(0, 6, 0).UTC()
	first, err := s.Correct(ctx, Correction{ID: "exp-1", Card: "2900000000018", Points: dec("5"), Reason: "test", ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	inMSK := exp.In(time.FixedZone("MSK", 3*3600))
	again, err := s.Correct(ctx, Correction{ID: "exp-1", Card: "2900000000018", Points: dec("5"), Reason: "test", ExpiresAt: &inMSK})
	if err != nil || !again.Duplicate || again.EntryID != first.EntryID {
		t.Fatalf("the retry in another zone: %+v, %v; want a duplicate of %s", again, err, first.EntryID)
	}
}

// policyKind imports a copy of the demo's BONUS program with the given
// negative-balance policy and a card kind of it, and returns the kind.
func policyKind(t *testing.T, s *Server, m checkout.NegativeBalancePolicy) string {
	t.Helper()
	p := demoReplica(t).Programs[0]
	p.ID, p.Promotions, p.NegativeBalance = "P-"+string(m.Mode), nil, m
	kind := "k-" + p.ID
	extra := &store.Replica{Version: 1, Programs: []checkout.Program{p},
		CardKinds: []store.ReplicaCardKind{{ID: kind, Name: p.ID, Kind: checkout.KindBonus, Program: p.ID}}}
	if _, err := s.Import(context.Background(), extra); err != nil {
		t.Fatal(err)
	}
	return kind
}

// policyCard imports card with lots, of a kind whose program has policy m.
func policyCard(t *testing.T, s *Server, m checkout.NegativeBalancePolicy, card string, lots ...store.ReplicaLot) {
	t.Helper()
	kind := policyKind(t, s, m)
	extra := &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: card, Kind: kind, State: checkout.StateActive}}, Lots: lots}
	if _, err := s.Import(context.Background(), extra); err != nil {
		t.Fatal(err)
	}
}

// TestReturnOfEitherSaleTakesBackTheWriteOff: two tills spend 250 each of
// a lot of 300; the second to be folded overdraws it and BONUS writes the
// 200 off. Returning the sale folded first gives back 50 as well: the
// write-off belongs to the lot spent twice, not to whichever sale came
// second.
func TestReturnOfEitherSaleTakesBackTheWriteOff(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now, lot("3400000000007", "G1", "300", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	lt.push(t, s, spendFrom("3400000000007", "G1", "first", "250"), spendFrom("3400000000007", "G1", "second", "250"))
	lt.push(t, s, giveBack("3400000000007", "G1", "first", "250"))
	if b := balanceOf(t, s, "3400000000007"); b != "50" {
		t.Fatalf("after returning the sale folded first: %s, want 50", b)
	}
}

// TestPolicyCountsTheCardsPoints: forbid writes off only debt the card's
// points cannot cover. A return's ~debt and a redemption without lots are
// taken from the card's active lots (head office knows points the till
// did not); a spend beyond the active points is kept as debt while lots
// not active yet cover it, and settled from them when they activate.
func TestPolicyCountsTheCardsPoints(t *testing.T) {
	now := demoNow
	later := demoNow.Add(72 * time.Hour)
	s := lateFixture(t, &now,
		lot("3400000000008", "H1", "100", demoNow.Add(-48*time.Hour), nil),
		lot("3400000000009", "I1", "1200", demoNow.Add(-48*time.Hour), nil),
		lot("3400000000010", "J1", "300", demoNow.Add(-48*time.Hour), nil))
	// Card 10's second lot becomes active in three days.
	jl := lot("3400000000010", "J2", "200", demoNow.Add(-48*time.Hour), nil)
	jl.ActiveFrom = &later
	if _, err := s.Import(context.Background(), &store.Replica{Version: 1, Lots: []store.ReplicaLot{jl}}); err != nil {
		t.Fatal(err)
	}
	var lt lateTill
	lt.push(t, s,
		store.Entry{CardCode: "3400000000008", Kind: store.KindReversal, Points: dec("-30"), PurchaseKop: -3000,
			Lots: []store.LotChange{{LotID: store.DebtLot, Delta: dec("-30")}}, CreatedAt: demoNow},
		store.Entry{CardCode: "3400000000009", Kind: store.KindRedemption, Points: dec("-3"), AmountKop: 300, CreatedAt: demoNow},
		store.Entry{CardCode: "3400000000010", Kind: store.KindRedemption, Points: dec("-500"), AmountKop: 500,
			Lots: []store.LotChange{{LotID: "J1", Delta: dec("-500")}}, CreatedAt: demoNow})
	for card, want := range map[string]string{"3400000000008": "70", "3400000000009": "1197", "3400000000010": "0"} {
		if b := balanceOf(t, s, card); b != want {
			t.Errorf("card %s: balance %s, want %s", card, b, want)
		}
	}
	if wos, err := s.WriteOffs(context.Background()); err != nil || len(wos) != 0 {
		t.Fatalf("write-offs %+v, %v; want none: every card's points cover its debt", wos, err)
	}
	now = later.Add(time.Hour)
	if st, err := s.Maintain(context.Background()); err != nil || st.Settled != 1 {
		t.Fatalf("maintain once J2 is active: %+v, %v; want card 10 settled", st, err)
	}
	if cb, err := s.CardBalanceOf(context.Background(), "3400000000010"); err != nil || cb.Balance.String() != "0" || cb.Debt.String() != "0" {
		t.Fatalf("card 10 after settling: %+v, %v; want balance 0, no debt", cb, err)
	}
}

// TestReturnSettlesDebtBeforeExpiry: on an allow card two sales overdraw a
// lot by 200 (kept as debt); returning one refills the lot, and the debt
// is settled from it at once, so when the lot later expires the card is
// at 0, not −200.
func TestReturnSettlesDebtBeforeExpiry(t *testing.T) {
	now := demoNow
	soon := demoNow.Add(time.Hour)
	s := lateFixture(t, &now)
	policyCard(t, s, checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, "3400000000011",
		lot("3400000000011", "K1", "300", demoNow.Add(-48*time.Hour), &soon))
	var lt lateTill
	lt.push(t, s, spendFrom("3400000000011", "K1", "one", "250"), spendFrom("3400000000011", "K1", "two", "250"))
	lt.push(t, s, giveBack("3400000000011", "K1", "two", "250"))
	if cb, err := s.CardBalanceOf(context.Background(), "3400000000011"); err != nil || cb.Balance.String() != "50" || cb.Debt.String() != "0" {
		t.Fatalf("after the return: %+v, %v; want balance 50 with the debt settled", cb, err)
	}
	now = soon.Add(time.Minute)
	if _, err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, s, "3400000000011"); b != "0" {
		t.Fatalf("after K1 expired: %s, want 0", b)
	}
}

// TestReturnPaysBackTheLotsItBorrowedFrom: lot M (300, expiring soon) is
// spent twice (250 + 250); its shortfall takes K's 40 (no expiry) and the
// rest, 160, is written off. Returning the second sale gives back the 160
// write-off, K's 40 to K and 50 to M: once M expires the card keeps K's
// 40 (before, all 90 went into M and lapsed with it).
func TestReturnPaysBackTheLotsItBorrowedFrom(t *testing.T) {
	now := demoNow
	soon := demoNow.Add(time.Hour)
	s := lateFixture(t, &now, lot("3400000000012", "M", "300", demoNow.Add(-48*time.Hour), &soon),
		lot("3400000000012", "K", "40", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	lt.push(t, s, spendFrom("3400000000012", "M", "a", "250"), spendFrom("3400000000012", "M", "b", "250"))
	lt.push(t, s, giveBack("3400000000012", "M", "b", "250"))
	remaining := func(lot string) string {
		var r string
		s.db.QueryRow(context.Background(), `SELECT remaining::text FROM lots WHERE card = '3400000000012' AND lot_id = $1`, lot).Scan(&r)
		return r
	}
	if m, k := remaining("M"), remaining("K"); m != "50" || k != "40" {
		t.Fatalf("after the return: M %s, K %s; want 50 and 40 (K's points back in K)", m, k)
	}
	now = soon.Add(time.Minute)
	if _, err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, s, "3400000000012"); b != "40" {
		t.Fatalf("after M expired: %s, want 40", b)
	}
	// The first sale returned into the expired M: its points lapse at
	// once (no maintain run), so the balance formula (loaded 340 + journal
	// 0 + write-offs 0 − expired) holds at every moment.
	lt.push(t, s, giveBack("3400000000012", "M", "a", "250"))
	if cb, err := s.CardBalanceOf(context.Background(), "3400000000012"); err != nil || cb.Balance.String() != "40" || cb.Expired.String() != "300" {
		t.Fatalf("after returning the first sale into the expired M: %+v, %v; want balance 40, 300 expired", cb, err)
	}
}

// TestLateDebtSettledFromALotAccruedSince: a return dated an hour ago
// leaves 30 of debt (~debt) that no lot active then covers; a lot accrued
// since, active now, pays it at once, so when that lot expires the card is
// at 0, not −30.
func TestLateDebtSettledFromALotAccruedSince(t *testing.T) {
	now := demoNow
	soon := demoNow.Add(time.Hour)
	s := lateFixture(t, &now, lot("3400000000013", "N0", "1", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	lt.push(t, s, store.Entry{CardCode: "3400000000013", Kind: store.KindRedemption, Points: dec("-1"), AmountKop: 100,
		Lots: []store.LotChange{{LotID: "N0", Delta: dec("-1")}}, CreatedAt: demoNow.Add(-2 * time.Hour)})
	lt.push(t, s, store.Entry{CardCode: "3400000000013", Kind: store.KindAccrual, Points: dec("100"), PurchaseKop: 10000,
		Lots: []store.LotChange{{Create: true, Delta: dec("100"), ActiveFrom: demoNow, ExpiresAt: soon}}, CreatedAt: demoNow})
	lt.push(t, s, store.Entry{CardCode: "3400000000013", Kind: store.KindReversal, Points: dec("-30"), PurchaseKop: -3000,
		Lots: []store.LotChange{{LotID: store.DebtLot, Delta: dec("-30")}}, CreatedAt: demoNow.Add(-time.Hour)})
	if cb, err := s.CardBalanceOf(context.Background(), "3400000000013"); err != nil || cb.Balance.String() != "70" || cb.Debt.String() != "0" {
		t.Fatalf("after the late return: %+v, %v; want balance 70, the debt settled from the new lot", cb, err)
	}
	now = soon.Add(time.Minute)
	if _, err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, s, "3400000000013"); b != "0" {
		t.Fatalf("after the new lot expired: %s, want 0", b)
	}
}

// TestReturnUnwindsUnderEveryPolicy: lot M (300, expiring) and K (40, no
// expiry). Sale a spends 250 of M; M expires (50 lapse); sale b, made
// before the expiry, arrives after it and spends 250 of M: 50 from what
// expired, 40 borrowed from K, the rest written off or kept as debt as
// the policy says. b is then returned in two parts, after the expiry: the
// card must end with K's 40 whatever the policy (before, under limit and
// allow the return's points lapsed in M, and the debt was settled from
// K's 40 in between).
func TestReturnUnwindsUnderEveryPolicy(t *testing.T) {
	for _, m := range []checkout.NegativeBalancePolicy{{Mode: checkout.NegativeForbid},
		{Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("100")}, {Mode: checkout.NegativeAllow}} {
		t.Run(string(m.Mode), func(t *testing.T) {
			now := demoNow
			soon := demoNow.Add(time.Hour)
			s := lateFixture(t, &now)
			const card = "3400000000014"
			policyCard(t, s, m, card, lot(card, "M", "300", demoNow.Add(-48*time.Hour), &soon), lot(card, "K", "40", demoNow.Add(-48*time.Hour), nil))
			var lt lateTill
			lt.push(t, s, spendFrom(card, "M", "a", "250"))
			now = soon.Add(time.Minute)
			if _, err := s.Maintain(context.Background()); err != nil {
				t.Fatal(err)
			}
			lt.push(t, s, spendFrom(card, "M", "b", "250"))
			lt.push(t, s, giveBack(card, "M", "b", "100"))
			lt.push(t, s, giveBack(card, "M", "b", "150"))
			if cb, err := s.CardBalanceOf(context.Background(), card); err != nil || cb.Balance.String() != "40" || cb.Debt.String() != "0" {
				t.Fatalf("after returning b: %+v, %v; want K's 40 and no debt", cb, err)
			}
		})
	}
}

// TestPayingBackALotUnwindsItToo: M (300) is spent twice and borrows K's
// 100; K is then spent twice itself (80 + 80, written off). Returning one
// of M's sales pays K back, and K's own write-off is taken back from that
// too: 450 loaded and corrected − (250 + 80) spent = 120.
func TestPayingBackALotUnwindsItToo(t *testing.T) {
	now := demoNow
	const card = "3400000000015"
	s := lateFixture(t, &now, lot(card, "M", "300", demoNow.Add(-48*time.Hour), nil), lot(card, "K", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	lt.push(t, s, spendFrom(card, "M", "a", "250"), spendFrom(card, "M", "b", "250"), spendFrom(card, "K", "c", "80"), spendFrom(card, "K", "d", "80"))
	if _, err := s.Correct(context.Background(), Correction{ID: "plus-50", Card: card, Points: dec("50"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	lt.push(t, s, giveBack(card, "K", "c", "80"))
	lt.push(t, s, giveBack(card, "M", "a", "250"))
	if b := balanceOf(t, s, card); b != "120" {
		t.Fatalf("after returning c and a: %s, want 120", b)
	}
}

// TestReturningEverySaleRestoresTheCard is a property: on a card with
// three lots, random sales spend random points from random lots (often
// more than the lot still holds: the double spending of tills offline;
// sometimes from a lot Z head office never had), folded in random
// batches; then every sale is returned, in random parts and order. After
// every batch the docs' balance formula holds (loaded + Σ journal applied
// + Σ write-offs − Σ expired) and no lot is below 0; whatever the policy,
// the card ends where it began: its balance the lots' total, no debt, the
// write-offs taken back to 0. Then returns giving back more than a sale
// spent (a part again, another lot, Z) are all rejected and change
// nothing.
func TestReturningEverySaleRestoresTheCard(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	policies := []checkout.NegativeBalancePolicy{{Mode: checkout.NegativeForbid}, {Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("100")},
		{Mode: checkout.NegativeDeductRefund}, {Mode: checkout.NegativeAllow}}
	now := demoNow
	s := lateFixture(t, &now)
	kinds := make([]string, len(policies))
	for i, m := range policies {
		kinds[i] = policyKind(t, s, m)
	}
	var lt lateTill
	ctx := context.Background()
	for n := 0; n < 40; n++ {
		card := fmt.Sprintf("35%011d", n)
		kind := kinds[n%len(kinds)]
		total := 0
		extra := &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: card, Kind: kind, State: checkout.StateActive}}}
		for _, id := range []string{"A", "B", "C"} {
			pts := 50 + rng.IntN(251)
			total += pts
			extra.Lots = append(extra.Lots, lot(card, id, strconv.Itoa(pts), demoNow.Add(-48*time.Hour), nil))
		}
		if _, err := s.Import(ctx, extra); err != nil {
			t.Fatal(err)
		}
		type sale struct {
			check, lot string
			pts        int
		}
		// push folds a batch and checks the formula and the lots.
		push := func(es ...store.Entry) {
			t.Helper()
			lt.push(t, s, es...)
			cb, err := s.CardBalanceOf(ctx, card)
			if err != nil {
				t.Fatal(err)
			}
			var formula string
			var negative int
			s.db.QueryRow(ctx, `SELECT ($2::numeric + (SELECT coalesce(sum(points), 0) FROM journal WHERE card_code = $1 AND rejected = '')
				+ (SELECT coalesce(sum(points), 0) FROM debt_writeoffs WHERE card = $1) - (SELECT coalesce(sum(expired), 0) FROM lots WHERE card = $1))::text,
				(SELECT count(*) FROM lots WHERE card = $1 AND remaining < 0)`, card, total).Scan(&formula, &negative)
			if formula != cb.Balance.String() || negative != 0 {
				t.Fatalf("card %s (%s) after %v: balance %s, the formula %s, %d lots below 0", card, kind, es, cb.Balance, formula, negative)
			}
		}
		var sales []sale
		var batch []store.Entry
		for k := 0; k < 2+rng.IntN(4); k++ {
			sl := sale{fmt.Sprintf("%s-s%d", card, k), []string{"A", "B", "C", "Z"}[rng.IntN(4)], 10 + rng.IntN(291)}
			sales = append(sales, sl)
			batch = append(batch, spendFrom(card, sl.lot, sl.check, strconv.Itoa(sl.pts)))
			if rng.IntN(2) == 0 {
				push(batch...)
				batch = nil
			}
		}
		var parts []store.Entry
		for _, sl := range sales {
			left := sl.pts
			for left > 0 {
				p := left
				if left > 1 && rng.IntN(2) == 0 {
					p = 1 + rng.IntN(left-1)
				}
				parts = append(parts, giveBack(card, sl.lot, sl.check, strconv.Itoa(p)))
				left -= p
			}
		}
		rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		for _, e := range parts {
			batch = append(batch, e)
			if rng.IntN(2) == 0 {
				push(batch...)
				batch = nil
			}
		}
		if len(batch) > 0 {
			push(batch...)
		}
		cb, err := s.CardBalanceOf(ctx, card)
		if err != nil {
			t.Fatal(err)
		}
		var written string
		s.db.QueryRow(ctx, `SELECT coalesce(sum(points), 0)::text FROM debt_writeoffs WHERE card = $1`, card).Scan(&written)
		if cb.Balance.String() != strconv.Itoa(total) || cb.Debt.String() != "0" || written != "0" {
			t.Errorf("card %s (%s), sales %+v all returned: balance %s debt %s, write-offs %s; want %d, 0, 0",
				card, kind, sales, cb.Balance, cb.Debt, written, total)
		}
		var over []store.Entry
		for _, sl := range sales {
			lot := []string{sl.lot, "A", "B", "C", "Z"}[rng.IntN(5)]
			over = append(over, giveBack(card, lot, sl.check, strconv.Itoa(1+rng.IntN(sl.pts))))
		}
		res := lt.push(t, s, over...)
		for _, r := range res.Results {
			if r.Status != wire.Rejected {
				t.Errorf("card %s: return over its sale %s %s, want rejected", card, r.ID, r.Status)
			}
		}
		if cb, err := s.CardBalanceOf(ctx, card); err != nil || cb.Balance.String() != strconv.Itoa(total) {
			t.Errorf("card %s after the returns over their sales: %+v, %v; want %d", card, cb, err, total)
		}
	}
}

// TestReturnPaysBackTheLotThatPaidTheDebt: under limit and allow a double
// spend of M leaves debt; a later accrual X, expiring soon, pays it. When a
// sale is returned the points go back to X, not into M: once X expires
// the card keeps only what M really holds (before, X's 100 lived on in M).
func TestReturnPaysBackTheLotThatPaidTheDebt(t *testing.T) {
	for _, m := range []checkout.NegativeBalancePolicy{{Mode: checkout.NegativeLimit, Limit: checkout.MustPoints("100")}, {Mode: checkout.NegativeAllow}} {
		t.Run(string(m.Mode), func(t *testing.T) {
			now := demoNow
			soon := demoNow.Add(time.Hour)
			s := lateFixture(t, &now)
			const card = "3400000000016"
			policyCard(t, s, m, card, lot(card, "M", "300", demoNow.Add(-48*time.Hour), nil))
			var lt lateTill
			lt.push(t, s, spendFrom(card, "M", "a", "250"), spendFrom(card, "M", "b", "250"))
			lt.push(t, s, store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("100"), PurchaseKop: 10000,
				Lots: []store.LotChange{{Create: true, Delta: dec("100"), ActiveFrom: demoNow, ExpiresAt: soon}}, CreatedAt: demoNow})
			lt.push(t, s, giveBack(card, "M", "b", "250"))
			if b := balanceOf(t, s, card); b != "150" {
				t.Fatalf("after returning b: %s, want 150 (M 50 + X 100)", b)
			}
			now = soon.Add(time.Minute)
			if _, err := s.Maintain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if b := balanceOf(t, s, card); b != "50" {
				t.Fatalf("after X expired: %s, want 50", b)
			}
		})
	}
}

// TestReturnToAnUnknownLotRefillsTheOverdrawnOne: sale b spent 250 from
// lot Z, which head office never had, so they came out of M, overdrawing
// it, and 200 were written off. b's return names Z. The points go back to
// M and take the write-off back (50, as if the till had named M), instead
// of a new lot of 250 beside the write-off.
func TestReturnToAnUnknownLotRefillsTheOverdrawnOne(t *testing.T) {
	now := demoNow
	const card = "3400000000017"
	s := lateFixture(t, &now, lot(card, "M", "300", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	lt.push(t, s, spendFrom(card, "M", "a", "250"), spendFrom(card, "Z", "b", "250"))
	lt.push(t, s, giveBack(card, "Z", "b", "250"))
	if b := balanceOf(t, s, card); b != "50" {
		t.Fatalf("after b's return to lot Z: %s, want 50", b)
	}
	var lots int
	s.db.QueryRow(context.Background(), `SELECT count(*) FROM lots WHERE card = $1`, card).Scan(&lots)
	if lots != 1 {
		t.Fatalf("%d lots, want M alone (no lot Z made)", lots)
	}
}

// TestReturnOfACardInDebt: sale b spends 250 of M that sale a spent
// already, so M borrows 200 from N; sale c then spends 300 of N, which
// leaves the card 200 in debt, N having borrowed them. The return of b,
// folded while the card is in debt, pays N back and N the debt: M keeps 50.
func TestReturnOfACardInDebt(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now)
	const card = "3400000000018"
	accrued := demoNow.Add(-48 * time.Hour)
	policyCard(t, s, checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, card, lot(card, "M", "300", accrued, nil), lot(card, "N", "300", accrued, nil))
	var lt lateTill
	lt.push(t, s, spendFrom(card, "M", "a", "250"), spendFrom(card, "M", "b", "250"), spendFrom(card, "N", "c", "300"))
	ctx := context.Background()
	debt := func() string {
		var d string
		if err := s.db.QueryRow(ctx, `SELECT debt::text FROM cards WHERE code = $1`, card).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := debt(); d != "200" {
		t.Fatalf("debt after the double spend: %s, want 200", d)
	}
	lt.push(t, s, giveBack(card, "M", "b", "250"))
	var m, n string
	if err := s.db.QueryRow(ctx, `SELECT (SELECT remaining::text FROM lots WHERE card = $1 AND lot_id = 'M'),
		(SELECT remaining::text FROM lots WHERE card = $1 AND lot_id = 'N')`, card).Scan(&m, &n); err != nil {
		t.Fatal(err)
	}
	if d, b := debt(), balanceOf(t, s, card); d != "0" || b != "50" || m != "50" || n != "0" {
		t.Fatalf("after returning b: debt %s, balance %s, M %s, N %s; want 0, 50, 50, 0", d, b, m, n)
	}
}

// TestCardsOwnProgramOverridesItsKinds: a double spend of 200 on a card
// whose own program's policy differs from its kind's follows the card's
// own: forbid writes the 200 off under an allow kind, allow keeps them
// under a forbid kind.
func TestCardsOwnProgramOverridesItsKinds(t *testing.T) {
	allow, forbid := checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, checkout.NegativeBalancePolicy{Mode: checkout.NegativeForbid}
	for _, c := range []struct {
		kind, own checkout.NegativeBalancePolicy
		debt      string
	}{{allow, forbid, "0"}, {forbid, allow, "200"}} {
		t.Run(string(c.own.Mode), func(t *testing.T) {
			now := demoNow
			s := lateFixture(t, &now)
			const card = "3400000000019"
			kind := policyKind(t, s, c.kind)
			policyKind(t, s, c.own)
			extra := &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: card, Kind: kind, Program: "P-" + string(c.own.Mode), State: checkout.StateActive}},
				Lots: []store.ReplicaLot{lot(card, "M", "300", demoNow.Add(-48*time.Hour), nil)}}
			if _, err := s.Import(context.Background(), extra); err != nil {
				t.Fatal(err)
			}
			var lt lateTill
			lt.push(t, s, spendFrom(card, "M", "a", "250"), spendFrom(card, "M", "b", "250"))
			var debt string
			if err := s.db.QueryRow(context.Background(), `SELECT debt::text FROM cards WHERE code = $1`, card).Scan(&debt); err != nil {
				t.Fatal(err)
			}
			if debt != c.debt {
				t.Fatalf("debt %s, want %s (the card's own program %s, not its kind's %s)", debt, c.debt, c.own.Mode, c.kind.Mode)
			}
		})
	}
}
