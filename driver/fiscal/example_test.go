package fiscal_test

import (
	"fmt"

	"tillagent/driver/fiscal"
)

// The spec's worked example: 100 points on a 399.90 basket, discount mode.
func ExampleBuildReceipt() {
	r, err := fiscal.BuildReceipt(fiscal.BonusCheck{
		ID: "S001-T01-000042",
		Lines: []fiscal.PlainLine{
			{Name: "Молоко", Qty: fiscal.Units(2), Price: 15000, VAT: fiscal.VAT20},
			{Name: "Хлеб", Qty: fiscal.Units(1), Price: 9990, VAT: fiscal.VAT10},
		},
		Redeemed: []fiscal.Money{7502, 2498}, // the loyalty engine's kopeck-exact allocation
		Money:    fiscal.Payments{Cash: 29990},
	})
	if err != nil {
		panic(err)
	}
	for _, l := range r.Lines {
		fmt.Printf("%s %s × %s = %s\n", l.Name, l.Qty, l.Price, l.Sum)
	}
	a, _ := r.Amounts()
	fmt.Printf("1020 %s, 1031 %s, 1217 %s\n", a.Total, a.Cash, a.CounterProvided)
	// Output:
	// Молоко 2 × 112.49 = 224.98
	// Хлеб 1 × 74.92 = 74.92
	// 1020 299.90, 1031 299.90, 1217 0.00
}
