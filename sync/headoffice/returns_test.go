package headoffice

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// wantStatuses checks the results' statuses in the order of their ids,
// which is the batch's order (head office answers the entries the decoder
// refused last).
// mustApply ingests b and fails t unless every entry is applied.
func mustApply(t *testing.T, s *Server, b *wire.Batch) {
	t.Helper()
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Results {
		if r.Status != wire.Applied {
			t.Fatalf("%s: %s %s", r.ID, r.Status, r.Error)
		}
	}
}

func wantStatuses(t *testing.T, what string, res *wire.BatchResult, want ...string) {
	t.Helper()
	slices.SortFunc(res.Results, func(a, b wire.Result) int { return strings.Compare(a.ID, b.ID) })
	if got := statuses(res); got != strings.Join(want, ",") {
		t.Fatalf("%s: results %s, want %s (%+v)", what, got, strings.Join(want, ","), res.Results)
	}
}

// rejectedWhy is the reason head office stored entry id as rejected with
// ("" when it was applied).
func rejectedWhy(t *testing.T, s *Server, id string) string {
	t.Helper()
	var why string
	if err := s.db.QueryRow(context.Background(), `SELECT rejected FROM journal WHERE id = $1`, id).Scan(&why); err != nil {
		t.Fatalf("entry %s: %v", id, err)
	}
	return why
}

// TestReturnGivesBackNoMoreThanItsCheckSpent: check c1 spends 60 from lot
// A. Its returns may give back 60 in all, whatever their entry ids: the
// same return sent twice under new ids, and one more point after the 60,
// are kept as rejected and change nothing, and the till's later entries
// still fold. A return to a lot the check did not spend from, to another
// card, to ~debt, or of a check that spent nothing, is rejected too;
// taking points away (a return reversing an accrual) is not capped.
func TestReturnGivesBackNoMoreThanItsCheckSpent(t *testing.T) {
	now := demoNow
	const card, other = "3400000000021", "3400000000022"
	at := demoNow.Add(-48 * time.Hour)
	s := lateFixture(t, &now, lot(card, "A", "100", at, nil), lot(card, "B", "100", at, nil), lot(other, "O", "100", at, nil))
	var lt lateTill
	lt.push(t, s, spendFrom(card, "A", "c1", "60"))
	res := lt.push(t, s, giveBack(card, "A", "c1", "40"))
	wantStatuses(t, "return of 40", res, wire.Applied)
	if b := balanceOf(t, s, card); b != "180" {
		t.Fatalf("after returning 40 of 60: %s, want 180", b)
	}

	// The same return again under a new id: only 20 are left to give back.
	res = lt.push(t, s, giveBack(card, "A", "c1", "40"),
		store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("5"), PurchaseKop: 500,
			Lots: []store.LotChange{{Create: true, Delta: dec("5"), ActiveFrom: demoNow}}, CreatedAt: demoNow})
	wantStatuses(t, "the return again, then an accrual", res, wire.Rejected, wire.Applied)
	if !strings.Contains(res.Results[0].Error, `check "c1" has 20 spent from it left to give back`) {
		t.Errorf("why: %s", res.Results[0].Error)
	}
	if b := balanceOf(t, s, card); b != "185" {
		t.Fatalf("after the repeated return and an accrual of 5: %s, want 185", b)
	}
	if why := rejectedWhy(t, s, res.Results[0].ID); why == "" {
		t.Errorf("the repeated return is not stored as rejected")
	}

	// Sent again, the rejected return is a duplicate: the till acks it.
	res2, err := s.Ingest(context.Background(), resend(t, s, res.Results[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the rejected return re-sent", res2, wire.Duplicate)

	// The last 20, then one point more.
	res = lt.push(t, s, giveBack(card, "A", "c1", "20"), giveBack(card, "A", "c1", "1"))
	wantStatuses(t, "the last 20 and one more", res, wire.Applied, wire.Rejected)
	if b := balanceOf(t, s, card); b != "205" {
		t.Fatalf("after the whole 60 back: %s, want 205", b)
	}

	// Lots, cards and checks the spend never touched.
	lt.push(t, s, spendFrom(card, "A", "c2", "10"))
	res = lt.push(t, s,
		giveBack(card, "B", "c2", "10"),           // a lot c2 did not spend from
		giveBack(other, "A", "c2", "10"),          // another card
		giveBack(card, store.DebtLot, "c2", "10"), // ~debt
		giveBack(card, "A", "never-sold", "10"),   // a check that spent nothing
		store.Entry{CheckID: "c2", CardCode: card, Kind: store.KindReversal, Points: dec("10"), CreatedAt: demoNow}, // no lots
		giveBack(card, "A", "c2", "10"), // the real return
	)
	wantStatuses(t, "returns of c2", res, wire.Rejected, wire.Rejected, wire.Rejected, wire.Rejected, wire.Rejected, wire.Applied)
	if b, o := balanceOf(t, s, card), balanceOf(t, s, other); b != "205" || o != "100" {
		t.Fatalf("after c2 and its returns: %s and %s, want 205 and 100", b, o)
	}

	// Taking an accrual back is not capped.
	res = lt.push(t, s, store.Entry{CheckID: "c3", CardCode: card, Kind: store.KindReversal, Points: dec("-5"),
		Lots: []store.LotChange{{LotID: "B", Delta: dec("-5")}}, CreatedAt: demoNow})
	wantStatuses(t, "a reversal taking 5 back", res, wire.Applied)
	if b := balanceOf(t, s, card); b != "200" {
		t.Fatalf("after taking 5 back: %s, want 200", b)
	}
}

// resend is a batch of till S001-T01 holding its stored entry id again.
func resend(t *testing.T, s *Server, id string) *wire.Batch {
	t.Helper()
	var body string
	if err := s.db.QueryRow(context.Background(), `SELECT body::text FROM journal WHERE id = $1`, id).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var e wire.Entry
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	return &wire.Batch{TillID: "S001-T01", Entries: []wire.Entry{e}}
}

// TestReturnCheckedInChainOrder: a sale and its return in one batch fold,
// and a second return of the whole sale in the same batch is rejected. A
// batch with a return that comes before the batch with its sale waits
// (stored, not folded); when the sale comes, the return folds after it,
// and an over-return stored while waiting is then kept as rejected.
func TestReturnCheckedInChainOrder(t *testing.T) {
	now := demoNow
	const card = "3400000000023"
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	res := lt.push(t, s, spendFrom(card, "A", "c1", "30"), giveBack(card, "A", "c1", "30"), giveBack(card, "A", "c1", "30"))
	wantStatuses(t, "sale and two returns in one batch", res, wire.Applied, wire.Applied, wire.Rejected)
	if b := balanceOf(t, s, card); b != "100" {
		t.Fatalf("after the sale and its return: %s, want 100", b)
	}

	sale := lt.batch(spendFrom(card, "A", "c2", "50"))
	returns := lt.batch(giveBack(card, "A", "c2", "50"), giveBack(card, "A", "c2", "50"))
	ctx := context.Background()
	res, err := s.Ingest(ctx, returns)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the returns before their sale", res, wire.Applied, wire.Applied) // stored, waiting
	if b := balanceOf(t, s, card); b != "100" {
		t.Fatalf("with the returns waiting: %s, want 100", b)
	}
	res, err = s.Ingest(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	if res.FoldedThrough != returns.Entries[1].ID {
		t.Fatalf("folded through %s, want %s", res.FoldedThrough, returns.Entries[1].ID)
	}
	if b := balanceOf(t, s, card); b != "100" {
		t.Fatalf("after the sale and its returns: %s, want 100 (50 spent, 50 given back once)", b)
	}
	if why := rejectedWhy(t, s, returns.Entries[0].ID); why != "" {
		t.Errorf("first return rejected: %s", why)
	}
	if why := rejectedWhy(t, s, returns.Entries[1].ID); !strings.Contains(why, `check "c2" has 0 spent from it left`) {
		t.Errorf("second return: rejected %q, want kept as rejected for giving back 50 points twice", why)
	}
}

// pushDecoded pushes the entries as lt does, through the batch decoder as
// the journal endpoint does, so the decoder's refusals count.
func (lt *lateTill) pushDecoded(t *testing.T, s *Server, es ...store.Entry) *wire.BatchResult {
	t.Helper()
	data, err := json.Marshal(lt.batch(es...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReturnCapHasNoBackDoor: the ways QA found to give back points no
// sale took are all refused and change nothing:
//   - a redemption naming ~debt, and a return giving points to ~debt (head
//     office would hold a lot "~debt", which no till's feed can carry);
//   - a redemption that adds to a lot (its return would give back points
//     the redemption moved, not spent);
//   - a return without lots after a redemption without lots (its
//     write-off could not be taken back);
//   - a return of a sale folded while head office did not hold the card,
//     once ERP imports the card;
//   - a return pushed by another till naming this till's check; this
//     till's own return of it then folds.
func TestReturnCapHasNoBackDoor(t *testing.T) {
	now := demoNow
	const card, empty = "3400000000031", "3400000000032"
	at := demoNow.Add(-48 * time.Hour)
	s := lateFixture(t, &now, lot(card, "A", "100", at, nil), lot(card, "B", "100", at, nil))
	policyCard(t, s, checkout.NegativeBalancePolicy{Mode: checkout.NegativeForbid}, empty)
	var lt lateTill

	res := lt.pushDecoded(t, s,
		store.Entry{CheckID: "d", CardCode: empty, Kind: store.KindRedemption, Points: dec("-100"),
			Lots: []store.LotChange{{LotID: store.DebtLot, Delta: dec("-100")}}, CreatedAt: demoNow},
		giveBack(empty, store.DebtLot, "d", "100"),
		store.Entry{CheckID: "m", CardCode: card, Kind: store.KindRedemption, Points: dec("0"),
			Lots: []store.LotChange{{LotID: "A", Delta: dec("-100")}, {LotID: "B", Delta: dec("100")}}, CreatedAt: demoNow},
		giveBack(card, "A", "m", "100"),
		store.Entry{CheckID: "n", CardCode: empty, Kind: store.KindRedemption, Points: dec("-100"), CreatedAt: demoNow},
		store.Entry{CheckID: "n", CardCode: empty, Kind: store.KindReversal, Points: dec("100"), CreatedAt: demoNow},
	)
	wantStatuses(t, "the back doors", res, wire.Rejected, wire.Rejected, wire.Rejected, wire.Rejected, wire.Applied, wire.Rejected)
	if b, e := balanceOf(t, s, card), balanceOf(t, s, empty); b != "200" || e != "0" {
		t.Fatalf("after the back doors: %s and %s, want 200 and 0", b, e)
	}
	if n := count(t, s, `SELECT count(*) FROM lots WHERE lot_id = '~debt'`); n != 0 {
		t.Fatalf("head office holds %d lots named ~debt", n)
	}

	// A sale on a card head office does not hold yet, then ERP imports
	// the card with the lot the sale spent, then the return.
	const later = "3400000000033"
	lt.push(t, s, spendFrom(later, "L", "u", "100"))
	if _, err := s.Import(context.Background(), &store.Replica{Version: 1,
		Cards: []store.ReplicaCard{{Code: later, Kind: "bonus", State: checkout.StateActive}}, Lots: []store.ReplicaLot{lot(later, "L", "100", at, nil)}}); err != nil {
		t.Fatal(err)
	}
	res = lt.push(t, s, giveBack(later, "L", "u", "100"))
	wantStatuses(t, "the return of a sale folded on no card", res, wire.Rejected)
	if b := balanceOf(t, s, later); b != "100" {
		t.Fatalf("card imported after its sale, then the return: %s, want 100", b)
	}

	// Another till names this till's check.
	lt.push(t, s, spendFrom(card, "A", "S001-T01-Cmine", "60"))
	if _, err := s.Enrol(context.Background(), "S001-T09", "S001"); err != nil {
		t.Fatal(err)
	}
	other := lateTill{till: "S001-T09"}
	res = other.push(t, s, giveBack(card, "A", "S001-T01-Cmine", "60"))
	wantStatuses(t, "another till's return of this till's check", res, wire.Rejected)
	res = lt.push(t, s, giveBack(card, "A", "S001-T01-Cmine", "60"))
	wantStatuses(t, "this till's own return", res, wire.Applied)
	if b := balanceOf(t, s, card); b != "200" {
		t.Fatalf("after the sale and its return: %s, want 200", b)
	}
}

// TestEntryFinerThanTheProgramFolds: a till priced a check with the
// program it had (2 decimal places); ERP has since moved the card to one
// counting whole points. The redemption, the accrual and the return are
// folded as they are: refusing them would make the spent points
// spendable again and lose the printed accrual. ERP re-sending the finer
// lot unchanged is accepted.
func TestEntryFinerThanTheProgramFolds(t *testing.T) {
	now := demoNow
	const card = "3400000000051" // kind bonus: BONUS, whole points
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	var lt lateTill
	res := lt.pushDecoded(t, s, spendFrom(card, "A", "c", "10.55"),
		store.Entry{CheckID: "c", CardCode: card, Kind: store.KindAccrual, Points: dec("3.55"), PurchaseKop: 10000,
			Lots: []store.LotChange{{Create: true, Delta: dec("3.55"), ActiveFrom: demoNow}}, CreatedAt: demoNow})
	wantStatuses(t, "the sale", res, wire.Applied, wire.Applied)
	if b := balanceOf(t, s, card); b != "93" {
		t.Fatalf("after the sale: %s, want 93 (100 − 10.55 + 3.55)", b)
	}
	// ERP re-sending the card's lots as it holds them is not refused over
	// the finer one (the import leaves stored lots alone).
	if _, err := s.Import(context.Background(), &store.Replica{Version: 1, Lots: []store.ReplicaLot{
		lot(card, res.Results[1].ID, "3.55", demoNow, nil), lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil)}}); err != nil {
		t.Errorf("re-sending the stored lots: %v", err)
	}
	res = lt.pushDecoded(t, s, giveBack(card, "A", "c", "10.55"))
	wantStatuses(t, "the return", res, wire.Applied)
	if b := balanceOf(t, s, card); b != "103.55" {
		t.Fatalf("after the return: %s, want 103.55", b)
	}
}

// TestReturnsKeepTheLotsIssuedPoints: returns of sales that spent the same
// lots on two tills leave every lot with the points it was issued, while
// the points pass through it on their way back. Found by TestChaosSoak:
// till 1 spends A 100 and B 50; till 2, not knowing, spends A 100 and B
// 112 (A's 100 borrowed from B, 62 debt) and returns it: B got the 112
// and the 100 A borrowed (212) before paying the debt (150 left) and kept
// 212 points. And: two tills spend all of A (the second borrowing B's),
// the first sale is returned (through A, B is paid back), then the second:
// both lots as issued.
func TestReturnsKeepTheLotsIssuedPoints(t *testing.T) {
	at := demoNow.Add(-48 * time.Hour)
	lots := func(t *testing.T, s *Server, card string) string {
		t.Helper()
		rows, err := s.db.Query(context.Background(), `SELECT lot_id || ' ' || points || '/' || remaining FROM lots WHERE card = $1 ORDER BY lot_id`, card)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return strings.Join(out, ", ")
	}
	spend := func(card, check string, lotPts ...string) store.Entry {
		e := store.Entry{CheckID: check, CardCode: card, Kind: store.KindRedemption, AmountKop: 100, CreatedAt: demoNow}
		for i := 0; i < len(lotPts); i += 2 {
			e.Lots = append(e.Lots, store.LotChange{LotID: lotPts[i], Delta: dec("-" + lotPts[i+1])})
			e.Points = e.Points.Sub(dec(lotPts[i+1]))
		}
		return e
	}
	back := func(e store.Entry) store.Entry {
		r := store.Entry{CheckID: e.CheckID, CardCode: e.CardCode, Kind: store.KindReversal, Points: e.Points.Neg(), AmountKop: -100, CreatedAt: demoNow}
		for _, l := range e.Lots {
			r.Lots = append(r.Lots, store.LotChange{LotID: l.LotID, Delta: l.Delta.Neg()})
		}
		return r
	}
	// twoTills is head office with lots A (100) and B of card, and tills
	// S001-T01 and S001-T02.
	twoTills := func(t *testing.T, card, b string) (*Server, lateTill, lateTill) {
		now := demoNow
		s := lateFixture(t, &now, lot(card, "A", "100", at, nil), lot(card, "B", b, at, nil))
		if _, err := s.Enrol(context.Background(), "S001-T02", "S001"); err != nil {
			t.Fatal(err)
		}
		return s, lateTill{}, lateTill{till: "S001-T02"}
	}
	t.Run("a return passing points on twice", func(t *testing.T) {
		const card = "3400000000031"
		s, t1, t2 := twoTills(t, card, "200")
		wantStatuses(t, "till 1's sale", t1.push(t, s, spend(card, "c1", "A", "100", "B", "50")), wire.Applied)
		sale := spend(card, "c2", "A", "100", "B", "112")
		wantStatuses(t, "till 2's sale and its return", t2.push(t, s, sale, back(sale)), wire.Applied, wire.Applied)
		if got := lots(t, s, card); got != "A 100/0, B 200/150" {
			t.Errorf("lots: %s, want A 100/0, B 200/150", got)
		}
		if b := balanceOf(t, s, card); b != "150" {
			t.Errorf("balance %s, want 150", b)
		}
	})
	t.Run("the borrowing sale returned last", func(t *testing.T) {
		const card = "3400000000032"
		s, t1, t2 := twoTills(t, card, "100")
		s1, s2 := spend(card, "c1", "A", "100"), spend(card, "c2", "A", "100")
		wantStatuses(t, "till 1's sale", t1.push(t, s, s1), wire.Applied)
		wantStatuses(t, "till 2's sale", t2.push(t, s, s2), wire.Applied)
		wantStatuses(t, "till 1's return", t1.push(t, s, back(s1)), wire.Applied)
		wantStatuses(t, "till 2's return", t2.push(t, s, back(s2)), wire.Applied)
		if got := lots(t, s, card); got != "A 100/100, B 100/100" {
			t.Errorf("lots: %s, want A 100/100, B 100/100", got)
		}
		if b := balanceOf(t, s, card); b != "200" {
			t.Errorf("balance %s, want 200", b)
		}
	})
}
