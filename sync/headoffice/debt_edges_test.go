package headoffice

import (
	"context"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

const edgeDebtCard, edgeOtherCard = "3400000000111", "3400000000112"

// edgeCardInDebt is head office with card edgeDebtCard (allow: it keeps any
// debt) 200 in debt the way TestReturnOfACardInDebt makes it: sale b
// spends 250 of lot M that sale a spent already, so M borrows 200 from N;
// sale c spends N's 300, which leaves N having borrowed 200 from debt.
// edgeOtherCard (kind bonus) has lot O of 300. lt is the till's chain so far.
func edgeCardInDebt(t *testing.T) (*Server, *lateTill) {
	t.Helper()
	now := demoNow
	accrued := demoNow.Add(-48 * time.Hour)
	s := lateFixture(t, &now, lot(edgeOtherCard, "O", "300", accrued, nil))
	policyCard(t, s, checkout.NegativeBalancePolicy{Mode: checkout.NegativeAllow}, edgeDebtCard,
		lot(edgeDebtCard, "M", "300", accrued, nil), lot(edgeDebtCard, "N", "300", accrued, nil))
	lt := &lateTill{}
	wantStatuses(t, "the double spend", lt.push(t, s, spendFrom(edgeDebtCard, "M", "a", "250"), spendFrom(edgeDebtCard, "M", "b", "250"),
		spendFrom(edgeDebtCard, "N", "c", "300")), wire.Applied, wire.Applied, wire.Applied)
	if d := edgeDebt(t, s, edgeDebtCard); !d.Equal(dec("200")) {
		t.Fatalf("debt after the double spend: %s, want 200", d)
	}
	return s, lt
}

// edgeLots is card's lots' remaining, "id=remaining" in id (byte) order.
func edgeLots(t *testing.T, s *Server, card string) string {
	t.Helper()
	var out string
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce(string_agg(lot_id || '=' || remaining::text, ' ' ORDER BY lot_id), '')
		FROM lots WHERE card = $1`, card).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// edgeOwedToDebt is what card's lots still owe its debt (lot_borrows from
// store.DebtLot), which can never be more than the debt: settling or
// paying the debt off moves or pays it.
func edgeOwedToDebt(t *testing.T, s *Server, card string) string {
	t.Helper()
	var owed string
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce(sum(points), 0)::text FROM lot_borrows WHERE card = $1 AND from_lot = $2`,
		card, store.DebtLot).Scan(&owed); err != nil {
		t.Fatal(err)
	}
	return owed
}

// accrue is an accrual of pts to card at demoNow, its lot active at once.
func accrue(card, pts string) store.Entry {
	return store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec(pts), PurchaseKop: 100, CreatedAt: demoNow,
		Lots: []store.LotChange{{Delta: dec(pts), Create: true, ActiveFrom: demoNow}}}
}

// TestUnfoldedAccrualSettlesADebtCard: an accrual of 500 to the card in
// debt arrives in a batch before its predecessor (an accrual to another
// card): stored, not folded, the debt untouched. The predecessor's batch
// folds both: the card, among the batch's only as a card of the till's
// unfolded entries, settles its 200 of debt from the new lot A, and what N
// owed the debt it owes A now. The return of sale b then gives M back 50,
// pays N back 200 and N pays A: M 50, N 0, A 500, nothing owed to a debt
// of 0.
func TestUnfoldedAccrualSettlesADebtCard(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	ctx := context.Background()
	gap := lt.batch(accrue(edgeOtherCard, "5"))
	late := lt.batch(accrue(edgeDebtCard, "500"))
	a := late.Entries[0].ID
	res, err := s.Ingest(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the batch before its predecessor", res, wire.Applied)
	if d := edgeDebt(t, s, edgeDebtCard); !d.Equal(dec("200")) {
		t.Fatalf("debt with the accrual stored unfolded: %s, want 200", d)
	}
	res, err = s.Ingest(ctx, gap)
	if err != nil {
		t.Fatal(err)
	}
	if wantStatuses(t, "the predecessor", res, wire.Applied); res.FoldedThrough != a {
		t.Fatalf("folded through %s, want %s", res.FoldedThrough, a)
	}
	if d, o := edgeDebt(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard); !d.IsZero() || o != "0" {
		t.Errorf("after the unfolded accrual folded: debt %s, owed to debt %s; want 0, 0", d, o)
	}
	if got, want := edgeLots(t, s, edgeDebtCard), "M=0 N=0 "+a+"=300"; got != want {
		t.Errorf("lots after the settle: %s, want %s", got, want)
	}
	wantStatuses(t, "the return of b", lt.push(t, s, giveBack(edgeDebtCard, "M", "b", "250")), wire.Applied)
	if got, want := edgeLots(t, s, edgeDebtCard), "M=50 N=0 "+a+"=500"; got != want {
		t.Errorf("lots after returning b: %s, want %s (N, paid back, pays back the lot that settled its debt)", got, want)
	}
	if d, b := edgeDebt(t, s, edgeDebtCard), balanceOf(t, s, edgeDebtCard); !d.IsZero() || b != "550" {
		t.Errorf("after returning b: debt %s, balance %s; want 0, 550", d, b)
	}
}

// TestUnfoldedReturnOfADebtCard: the return of sale b arrives before
// its predecessor and is stored unfolded; the predecessor's batch (no
// return in it) folds it. The card is both in debt and a card of the
// till's unfolded returns: what its lots borrowed is read once, not once
// for each, and the return pays N back and N the debt, as when the return
// comes in its own batch (TestReturnOfACardInDebt): M 50, N 0, debt 0.
func TestUnfoldedReturnOfADebtCard(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	ctx := context.Background()
	gap := lt.batch(accrue(edgeOtherCard, "5"))
	late := lt.batch(giveBack(edgeDebtCard, "M", "b", "250"))
	res, err := s.Ingest(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the return before its predecessor", res, wire.Applied)
	res, err = s.Ingest(ctx, gap)
	if err != nil {
		t.Fatal(err)
	}
	if wantStatuses(t, "the predecessor", res, wire.Applied); res.FoldedThrough != late.Entries[0].ID {
		t.Fatalf("folded through %s, want %s", res.FoldedThrough, late.Entries[0].ID)
	}
	if got := edgeLots(t, s, edgeDebtCard); got != "M=50 N=0" {
		t.Errorf("lots: %s, want M=50 N=0", got)
	}
	if d, b, o := edgeDebt(t, s, edgeDebtCard), balanceOf(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard); !d.IsZero() || b != "50" || o != "0" {
		t.Errorf("debt %s, balance %s, owed to debt %s; want 0, 50, 0", d, b, o)
	}
}

// TestDebtCardBesideAnotherReturn: one batch returns a sale of another
// card (so the returned cards' borrows are read first) and accrues 500 to
// the card in debt, which settles from the new lot; a later batch returns
// sale b of the card in debt. As in TestUnfoldedAccrualSettlesADebtCard:
// N pays back the lot that settled its debt.
func TestDebtCardBesideAnotherReturn(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	wantStatuses(t, "the other card's sale", lt.push(t, s, spendFrom(edgeOtherCard, "O", "o", "100")), wire.Applied)
	b := lt.batch(giveBack(edgeOtherCard, "O", "o", "100"), accrue(edgeDebtCard, "500"))
	a := b.Entries[1].ID
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the other card's return and the accrual", res, wire.Applied, wire.Applied)
	if d, o := edgeDebt(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard); !d.IsZero() || o != "0" {
		t.Errorf("after the accrual: debt %s, owed to debt %s; want 0, 0", d, o)
	}
	if got := edgeLots(t, s, edgeOtherCard); got != "O=300" {
		t.Errorf("other card's lots: %s, want O=300", got)
	}
	wantStatuses(t, "the return of b", lt.push(t, s, giveBack(edgeDebtCard, "M", "b", "250")), wire.Applied)
	if got, want := edgeLots(t, s, edgeDebtCard), "M=50 N=0 "+a+"=500"; got != want {
		t.Errorf("lots after returning b: %s, want %s", got, want)
	}
}

// TestDebtCardReturnedInTheSameBatchAsItsSettle: the card in debt
// gets an accrual that settles its debt and the return of sale b in one
// batch: the borrows are read once (the card is in debt and returned),
// and the result is that of the two batches apart.
func TestDebtCardReturnedInTheSameBatchAsItsSettle(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	b := lt.batch(accrue(edgeDebtCard, "500"), giveBack(edgeDebtCard, "M", "b", "250"))
	a := b.Entries[0].ID
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "accrual and return", res, wire.Applied, wire.Applied)
	if got, want := edgeLots(t, s, edgeDebtCard), "M=50 N=0 "+a+"=500"; got != want {
		t.Errorf("lots: %s, want %s", got, want)
	}
	if d, o, bal := edgeDebt(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard), balanceOf(t, s, edgeDebtCard); !d.IsZero() || o != "0" || bal != "550" {
		t.Errorf("debt %s, owed to debt %s, balance %s; want 0, 0, 550", d, o, bal)
	}
	// What the card's lots owe one another, in the database: nothing but
	// what is settled (every borrow paid back).
	var open int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT lot_id, from_lot FROM lot_borrows WHERE card = $1
		GROUP BY lot_id, from_lot HAVING sum(points) <> 0) x`, edgeDebtCard).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		var rows string
		s.db.QueryRow(context.Background(), `SELECT string_agg(lot_id || '<-' || from_lot || ' ' || points::text, ', ' ORDER BY id) FROM lot_borrows WHERE card = $1`, edgeDebtCard).Scan(&rows)
		t.Errorf("%d borrows still open: %s", open, rows)
	}
}

// TestDebtBeyondWhatItsLotsOwe: the card in debt (200, all of it what
// N borrowed) gets, in one batch, a return taking back 100 more than its
// lots hold (its ~debt lot: debt no lot borrowed) and an accrual of 500
// that settles all 300. The card is both in debt and returned in the
// batch: its lots' borrows are read once, so N owes the new lot A the 200
// it owed the debt, not more, and nothing is left owed to a debt of 0.
// The return of sale b then pays N back and N pays A: M 50, N 0, A 400.
func TestDebtBeyondWhatItsLotsOwe(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	takeBack := store.Entry{CheckID: "r", CardCode: edgeDebtCard, Kind: store.KindReversal, Points: dec("-100"), PurchaseKop: -10000,
		Lots: []store.LotChange{{LotID: store.DebtLot, Delta: dec("-100")}}, CreatedAt: demoNow}
	b := lt.batch(takeBack, accrue(edgeDebtCard, "500"))
	a := b.Entries[1].ID
	res, err := s.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "the take-back and the accrual", res, wire.Applied, wire.Applied)
	if d, o := edgeDebt(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard); !d.IsZero() || o != "0" {
		t.Errorf("after settling 300: debt %s, owed to debt %s; want 0, 0", d, o)
	}
	var owedA string
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce(sum(points), 0)::text FROM lot_borrows WHERE card = $1 AND lot_id = 'N' AND from_lot = $2`,
		edgeDebtCard, a).Scan(&owedA); err != nil {
		t.Fatal(err)
	}
	if owedA != "200" {
		t.Errorf("N owes A %s, want the 200 it owed the debt", owedA)
	}
	if got, want := edgeLots(t, s, edgeDebtCard), "M=0 N=0 "+a+"=200"; got != want {
		t.Errorf("lots after the settle: %s, want %s", got, want)
	}
	wantStatuses(t, "the return of b", lt.push(t, s, giveBack(edgeDebtCard, "M", "b", "250")), wire.Applied)
	if got, want := edgeLots(t, s, edgeDebtCard), "M=50 N=0 "+a+"=400"; got != want {
		t.Errorf("lots after returning b: %s, want %s", got, want)
	}
	if bal := balanceOf(t, s, edgeDebtCard); bal != "450" {
		t.Errorf("balance %s, want 450", bal)
	}
}

// TestUnfoldedDebtBeyondWhatItsLotsOwe: TestDebtBeyondWhatItsLotsOwe
// with the take-back and the accrual in a batch that arrives before its
// predecessor: when the predecessor's batch (no return in it) folds them,
// the card is in debt and a card of the till's unfolded returns, and its
// lots' borrows are still read once.
func TestUnfoldedDebtBeyondWhatItsLotsOwe(t *testing.T) {
	s, lt := edgeCardInDebt(t)
	takeBack := store.Entry{CheckID: "r", CardCode: edgeDebtCard, Kind: store.KindReversal, Points: dec("-100"), PurchaseKop: -10000,
		Lots: []store.LotChange{{LotID: store.DebtLot, Delta: dec("-100")}}, CreatedAt: demoNow}
	gap := lt.batch(accrue(edgeOtherCard, "5"))
	late := lt.batch(takeBack, accrue(edgeDebtCard, "500"))
	a := late.Entries[1].ID
	mustApply(t, s, late)
	mustApply(t, s, gap)
	if d, o := edgeDebt(t, s, edgeDebtCard), edgeOwedToDebt(t, s, edgeDebtCard); !d.IsZero() || o != "0" {
		t.Errorf("after settling 300: debt %s, owed to debt %s; want 0, 0", d, o)
	}
	if got, want := edgeLots(t, s, edgeDebtCard), "M=0 N=0 "+a+"=200"; got != want {
		t.Errorf("lots after the settle: %s, want %s", got, want)
	}
	wantStatuses(t, "the return of b", lt.push(t, s, giveBack(edgeDebtCard, "M", "b", "250")), wire.Applied)
	if got, want := edgeLots(t, s, edgeDebtCard), "M=50 N=0 "+a+"=400"; got != want {
		t.Errorf("lots after returning b: %s, want %s", got, want)
	}
}
