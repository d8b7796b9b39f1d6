package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
)

// basket is testdata/checks/bonus-basket.json: milk 2×89.90, bread 65.00,
// cigarettes 210.00, wine 799.00 = 1253.80.
func basket() checkout.Check {
	return checkout.Check{ID: "S001-T01-000101", StoreID: "S001", Lines: []checkout.Line{
		{No: 1, ProductID: "1001", Qty: checkout.MustQty("2"), Price: checkout.MustMoney("89.90")},
		{No: 2, ProductID: "1101", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("65.00")},
		{No: 3, ProductID: "3001", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("210.00")},
		{No: 4, ProductID: "2202", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("799.00")},
	}}
}

// TestSaleAndReturnRoundTrip prices the demo basket with the bonus card
// (redeeming 66) and the agent card, records the sale, checks that the
// store's balances are what the engine said they would be after the sale,
// then returns everything and checks the balances are back.
func TestSaleAndReturnRoundTrip(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	cards := []string{"2900000000018", "2600000000017"}
	in, err := s.QuoteInput(ctx, basket(), cards, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	redeem := checkout.MustPoints("66")
	in.Redeem = &redeem
	res, err := checkout.Quote(in)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.RecordSale(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	// Card 13: redemption + accrual; agent: accrual only.
	if len(ids) != 3 {
		t.Fatalf("RecordSale wrote %d entries, want 3", len(ids))
	}
	// A replay of the same check writes nothing and returns the same ids.
	again, err := s.RecordSale(ctx, res)
	if err != nil || strings.Join(again, ",") != strings.Join(ids, ",") {
		t.Fatalf("replayed RecordSale = %v, %v; want the first ids %v", again, err, ids)
	}
	if es, _ := s.EntriesOfCheck(ctx, res.CheckID); len(es) != 3 {
		t.Fatalf("journal holds %d entries of the check after a replay, want 3", len(es))
	}
	// The same check id with another payload is refused.
	other := res
	other.Cards = append([]checkout.CardResult(nil), res.Cards...)
	other.Cards[0].Accrued = other.Cards[0].Accrued.Add(checkout.MustPoints("1"))
	if _, err := s.RecordSale(ctx, other); !errors.Is(err, ErrCheckConflict) {
		t.Fatalf("RecordSale of another payload under check %s: %v, want ErrCheckConflict", res.CheckID, err)
	}
	for _, c := range res.Cards {
		b, err := s.Spendable(ctx, c.Code, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Spendable.Equal(c.SpendableAfter) || !b.Total.Equal(c.BalanceAfter) {
			t.Errorf("card %s after the sale: store %s/%s, engine said %s/%s (spendable/balance)",
				c.Code, b.Spendable, b.Total, c.SpendableAfter, c.BalanceAfter)
		}
	}
	// Worked: 300 − 66 = 234 spendable, 500 − 66 + 15 = 449 balance.
	if b, _ := s.Spendable(ctx, "2900000000018", demoNow); b.Spendable.String() != "234" || b.Total.String() != "449" {
		t.Fatalf("card 13 after the sale = %+v, want 234/449", b)
	}
	// The next quote sees the sale in the card's history.
	in2, err := s.QuoteInput(ctx, basket(), cards, demoNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c13, agent := in2.Cards[0], in2.Cards[1]
	if c13.AccruedThisMonth.String() != "175" || c13.RedeemedThisMonth.String() != "66" || c13.PurchasesAllTime.String() != "85753.80" {
		t.Fatalf("card 13 history after the sale: accrued %s redeemed %s all-time %s; want 175, 66, 85753.80",
			c13.AccruedThisMonth, c13.RedeemedThisMonth, c13.PurchasesAllTime)
	}
	if !agent.PurchasesAllTime.IsZero() || agent.AccruedThisMonth.String() != "100" {
		t.Fatalf("agent history: %s purchases, %s accrued; want 0 and 100", agent.PurchasesAllTime, agent.AccruedThisMonth)
	}

	// Full return an hour later.
	rin, err := s.ReturnInput(ctx, res, demoNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Lines {
		rin.Lines = append(rin.Lines, checkout.ReturnLine{No: l.No, Qty: l.Qty})
	}
	rr, err := checkout.Return(rin)
	if err != nil {
		t.Fatal(err)
	}
	rids, err := s.RecordReturn(ctx, "R1", res, rr)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.RecordReturn(ctx, "R1", res, rr); err != nil || strings.Join(again, ",") != strings.Join(rids, ",") {
		t.Fatalf("replayed RecordReturn = %v, %v; want %v", again, err, rids)
	}
	// The 66 points restored had paid 66.00 roubles: the card's reversal
	// gives them back.
	es, _ := s.EntriesOfCheck(ctx, res.CheckID)
	if len(es) != 5 {
		t.Fatalf("journal holds %d entries of the check, want 3 + 2", len(es))
	}
	if e := es[3]; e.CardCode != "2900000000018" || e.Kind != KindReversal || e.AmountKop != -6600 {
		t.Fatalf("card 13 reversal = %+v, want amount_kop -6600", e)
	}
	for _, w := range []struct{ code, spend, total string }{{"2900000000018", "300", "500"}, {"2600000000017", "700", "700"}} {
		b, err := s.Spendable(ctx, w.code, demoNow.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if b.Spendable.String() != w.spend || b.Total.String() != w.total || !b.Debt.IsZero() {
			t.Errorf("card %s after the full return = %+v, want %s/%s, no debt", w.code, b, w.spend, w.total)
		}
	}
	in3, err := s.QuoteInput(ctx, basket(), cards[:1], demoNow.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := in3.Cards[0].PurchasesAllTime.String(); got != "84500.00" {
		t.Fatalf("purchases after the full return = %s, want 84500.00", got)
	}
}

// TestRecordReturnBooksDebt records a return whose reversal the balance
// could not cover: the uncovered part is booked on DebtLot and counts as debt.
func TestRecordReturnBooksDebt(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	// A hand-made return result: 30 points reversed, 20 found on L-15-1,
	// 10 became debt.
	// One of two units of a 200.00 line with 10.00 discount comes back:
	// 95.00 leaves the purchase history.
	orig := checkout.Result{CheckID: "X1", StoreID: "S001", Cards: []checkout.CardResult{{Code: "2700000000014", Kind: checkout.KindCombined}},
		Lines: []checkout.LineResult{{No: 1, Qty: checkout.MustQty("2"), Sum: checkout.MustMoney("200.00"), Discount: checkout.MustMoney("10.00")}}}
	rr := checkout.ReturnResult{CheckID: "X1", Refund: checkout.MustMoney("80.00"),
		Lines: []checkout.ReturnLineResult{{No: 1, Qty: checkout.MustQty("1")}}, Cards: []checkout.ReturnCardResult{{
			Code: "2700000000014", Reversed: checkout.MustPoints("30"),
			LotsDebited: []checkout.LotUse{{LotID: "L-15-1", Points: checkout.MustPoints("20")}},
			DebtAdded:   checkout.MustPoints("10"),
		}}}
	if _, err := s.RecordReturn(ctx, "R1", orig, rr); err != nil {
		t.Fatal(err)
	}
	b, err := s.Spendable(ctx, "2700000000014", demoNow)
	if err != nil {
		t.Fatal(err)
	}
	// 2500 − 20 on the lot, 10 debt: balance 2470, spendable 2470.
	if b.Total.String() != "2470" || b.Spendable.String() != "2470" || b.Debt.String() != "10" {
		t.Fatalf("balance = %+v, want 2470/2470 with 10 debt", b)
	}
	es, _ := s.EntriesOfCheck(ctx, "X1")
	if len(es) != 1 || es[0].Kind != KindReversal || es[0].Points.String() != "-30" || es[0].PurchaseKop != -9500 {
		t.Fatalf("entries = %+v", es)
	}
}

// TestStoreAgreesWithEngine runs random sales on the demo replica (random
// baskets, cards and redemptions up to the maximum), records each, and
// checks that the balances the store computes afterwards are exactly the
// ones the engine announced (balance_after, spendable_after).
func TestStoreAgreesWithEngine(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	products := []string{"1001", "1002", "1003", "1004", "1101", "1103", "1201", "1301", "1401", "1501", "2001", "2101", "2102", "2201", "3001", "4002"}
	cardSets := [][]string{{"2900000000018"}, {"2900000000049"}, {"2700000000014"}, {"2900000000025"}, {"2900000000018", "2600000000017"}, {"2800000000011"}}
	recorded, redeemed := 0, 0
	for i := 0; i < 40; i++ {
		check := checkout.Check{ID: fmt.Sprintf("R%d", i), StoreID: "S001"}
		for n := 1 + rng.IntN(6); len(check.Lines) < n; {
			check.Lines = append(check.Lines, checkout.Line{No: len(check.Lines) + 1, ProductID: products[rng.IntN(len(products))],
				Qty: checkout.MustQty(fmt.Sprint(1 + rng.IntN(3))), Price: checkout.Kopecks(int64(5000 + rng.IntN(150000)))})
		}
		cards := cardSets[rng.IntN(len(cardSets))]
		in, err := s.QuoteInput(ctx, check, cards, demoNow)
		if err != nil {
			t.Fatal(err)
		}
		res, err := checkout.Quote(in)
		if err != nil {
			t.Fatal(err)
		}
		if r := res.Redemption; r != nil && r.Max.IsPositive() && rng.IntN(3) > 0 {
			p := checkout.IntPoints(int64(1 + rng.IntN(int(r.Max.Decimal().IntPart()))))
			if rng.IntN(2) == 0 {
				p = r.Max
			}
			in.Redeem = &p
			if res, err = checkout.Quote(in); err != nil {
				if strings.Contains(err.Error(), "minimum") || strings.Contains(err.Error(), "all") {
					continue // below min_redeem: the cashier would be told
				}
				t.Fatal(err)
			}
		}
		if _, err := s.RecordSale(ctx, res); err != nil {
			t.Fatal(err)
		}
		recorded++
		if res.Redemption != nil && res.Redemption.Points.IsPositive() {
			redeemed++
		}
		for _, c := range res.Cards {
			b, err := s.Spendable(ctx, c.Code, demoNow)
			if err != nil {
				t.Fatal(err)
			}
			if !b.Total.Equal(c.BalanceAfter) || !b.Spendable.Equal(c.SpendableAfter) {
				t.Fatalf("sale %d card %s: store balance %s spendable %s; engine said %s and %s",
					i, c.Code, b.Total, b.Spendable, c.BalanceAfter, c.SpendableAfter)
			}
		}
	}
	if recorded < 30 || redeemed < 5 {
		t.Fatalf("only %d sales recorded, %d with a redemption: the generator no longer exercises the store", recorded, redeemed)
	}
}

// TestRecordReturnMoneySide: the reversal carries the roubles the restored
// points had paid (negative), the money withheld from the refund and the
// points written off; a second return id is a separate return, the same id
// with another payload a conflict.
func TestRecordReturnMoneySide(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	// Two lines paid partly with 66 points (43.01 + 22.99 roubles).
	orig := checkout.Result{CheckID: "X2", StoreID: "S001",
		Cards:      []checkout.CardResult{{Code: "2900000000018", Kind: checkout.KindBonus}},
		Redemption: &checkout.Redemption{Card: "2900000000018", Points: checkout.MustPoints("66"), Money: checkout.MustMoney("66.00")},
		Lines: []checkout.LineResult{
			{No: 1, Qty: checkout.MustQty("2"), Sum: checkout.MustMoney("179.80"), Redeemed: checkout.MustMoney("43.01"), RedeemedPoints: checkout.MustPoints("43")},
			{No: 2, Qty: checkout.MustQty("1"), Sum: checkout.MustMoney("65.00"), Redeemed: checkout.MustMoney("22.99"), RedeemedPoints: checkout.MustPoints("23")},
		}}
	// One milk of two (21 of its 43 points: 43.01 × 21 / 43 = 21.0048… →
	// 21.00, half up) and the bread (all 23 points: exactly 22.99) come
	// back. 15 accrued points were already spent: 5 withheld as 5.00, 10
	// written off.
	rr := checkout.ReturnResult{CheckID: "X2", Refund: checkout.MustMoney("98.90"), Withheld: checkout.MustMoney("5.00"),
		Lines: []checkout.ReturnLineResult{
			{No: 1, Qty: checkout.MustQty("1"), RestoredPoints: checkout.MustPoints("21")},
			{No: 2, Qty: checkout.MustQty("1"), RestoredPoints: checkout.MustPoints("23")},
		},
		Cards: []checkout.ReturnCardResult{{Code: "2900000000018", Restored: checkout.MustPoints("44"), Reversed: checkout.MustPoints("15"),
			LotsRestored: []checkout.LotUse{{LotID: "L-13-1", Points: checkout.MustPoints("44")}},
			Withheld:     checkout.MustMoney("5.00"), WrittenOff: checkout.MustPoints("10")}}}
	ids, err := s.RecordReturn(ctx, "X2-R1", orig, rr)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.EntriesOfCheck(ctx, "X2")
	if err != nil || len(es) != 1 || es[0].ID != ids[0] {
		t.Fatalf("entries of X2 = %+v, %v; want the one reversal %v", es, err, ids)
	}
	e := es[0]
	if e.AmountKop != -4399 || e.WithheldKop != 500 || e.WrittenOff.String() != "10" || e.Points.String() != "44" {
		t.Fatalf("reversal = amount %d withheld %d written off %s points %s; want -4399, 500, 10, 44",
			e.AmountKop, e.WithheldKop, e.WrittenOff, e.Points)
	}
	// Written-off points and withheld money change no balance: 300 + 44.
	if b, _ := s.Spendable(ctx, "2900000000018", demoNow); b.Spendable.String() != "344" {
		t.Fatalf("spendable after the return = %s, want 344", b.Spendable)
	}
	if again, err := s.RecordReturn(ctx, "X2-R1", orig, rr); err != nil || len(again) != 1 || again[0] != ids[0] {
		t.Fatalf("replayed return = %v, %v; want %v", again, err, ids)
	}
	changed := rr
	changed.Cards = append([]checkout.ReturnCardResult(nil), rr.Cards...)
	changed.Cards[0].WrittenOff = checkout.MustPoints("11")
	if _, err := s.RecordReturn(ctx, "X2-R1", orig, changed); !errors.Is(err, ErrCheckConflict) {
		t.Fatalf("return X2-R1 with another payload: %v, want ErrCheckConflict", err)
	}
	if es, _ := s.EntriesOfCheck(ctx, "X2"); len(es) != 1 {
		t.Fatalf("entries of X2 after replay and conflict = %d, want 1", len(es))
	}
}
