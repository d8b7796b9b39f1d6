package headoffice

import (
	"context"
	"testing"
	"time"

	"tillagent/internal/store"
)

// TestLateAccrualLapsedKeepsWhatExpired: a till pushes, three hours late,
// an accrual of 30 whose lot lapsed an hour ago; the card holds 100 points
// in a lot without expiry. The fold creates the lot and expires it at
// once: the lot row keeps 30 expired (the balances report's `expired`, and
// balance = Σ entries − Σ expired), and the sale's return takes its 30
// back from what expired, leaving the other lot alone. Before, the new
// lot's insert wrote no `expired` (the column's 0): the report missed the
// 30 and the return took them from the other lot, balance 70 (found by the
// QA pass).
func TestLateAccrualLapsedKeepsWhatExpired(t *testing.T) {
	ctx := context.Background()
	now := demoNow
	const card = "3400000000002"
	s := lateFixture(t, &now, lot(card, "B2", "100", demoNow.AddDate(0, -1, 0), nil))
	var lt lateTill
	made := demoNow.Add(-3 * time.Hour)
	accrual := store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("30"), PurchaseKop: 30000, CreatedAt: made,
		Lots: []store.LotChange{{Create: true, Delta: dec("30"), ActiveFrom: made, ExpiresAt: demoNow.Add(-time.Hour)}}}
	b := lt.batch(accrual)
	if _, err := s.Ingest(ctx, b); err != nil {
		t.Fatal(err)
	}
	lapsed := b.Entries[0].ID
	var remaining, expired string
	if err := s.db.QueryRow(ctx, `SELECT remaining::text, expired::text FROM lots WHERE card = $1 AND lot_id = $2`, card, lapsed).
		Scan(&remaining, &expired); err != nil {
		t.Fatal(err)
	}
	cb, err := s.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if remaining != "0" || expired != "30" || cb.Balance.String() != "100" || cb.Expired.String() != "30" {
		t.Fatalf("a late accrual already lapsed: its lot remaining %s, expired %s; the card's balance %s, expired %s; want 0, 30, 100, 30",
			remaining, expired, cb.Balance, cb.Expired)
	}
	lt.push(t, s, store.Entry{CardCode: card, Kind: store.KindReversal, Points: dec("-30"), PurchaseKop: -30000, CheckID: lapsed, CreatedAt: now,
		Lots: []store.LotChange{{LotID: lapsed, Delta: dec("-30")}}})
	if got := balanceOf(t, s, card); got != "100" {
		t.Fatalf("the sale returned: balance %s, want 100 (its lapsed accrual taken back from what expired, lot B2 untouched)", got)
	}
}
