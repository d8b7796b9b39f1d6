package checkout_test

import (
	"fmt"
	"time"

	"tillagent/checkout"
)

// A bonus card with 300 points buys 1000.00 roubles of goods, spends 200
// points and earns 5 % on the 800.00 paid with money.
func ExampleQuote() {
	moscow := time.FixedZone("MSK", 3*3600)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, moscow)
	in := checkout.Input{
		Check: checkout.Check{ID: "T1-000001", StoreID: "S001", Lines: []checkout.Line{
			{No: 1, ProductID: "milk", Qty: checkout.MustQty("2"), Price: checkout.MustMoney("150.00")},
			{No: 2, ProductID: "coffee", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("700.00")},
		}},
		Cards: []checkout.Card{{Code: "2900000000013", Kind: checkout.KindBonus, State: checkout.StateActive, ProgramID: "bonus",
			Lots: []checkout.Lot{{ID: "L1", Points: checkout.MustPoints("300"), Remaining: checkout.MustPoints("300"), ActiveFrom: now.AddDate(0, -1, 0)}}}},
		Programs: []checkout.Program{{ID: "bonus", PointValue: checkout.MustMoney("1.00"),
			Accrual: []checkout.AccrualRule{{ID: "base", Kind: checkout.AccrualPercent, Percent: checkout.MustPercent("5")}}}},
		Now:      now,
		Location: moscow,
	}
	redeem := checkout.MustPoints("200")
	in.Redeem = &redeem
	r, err := checkout.Quote(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("max", r.Redemption.Max, "limited by", r.Redemption.MaxLimit)
	for _, l := range r.Lines {
		fmt.Println("line", l.No, "points pay", l.Redeemed, "money pays", l.Payable)
	}
	fmt.Println("earned", r.Cards[0].Accrued, "balance", r.Cards[0].BalanceAfter)
	// Output:
	// max 300 limited by balance
	// line 1 points pay 60.00 money pays 240.00
	// line 2 points pay 140.00 money pays 560.00
	// earned 40 balance 140
}
