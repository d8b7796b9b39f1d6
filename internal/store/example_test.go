package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// A till opens its store, loads a replica, and asks what a card may spend.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "store-example-")
	defer os.RemoveAll(dir)

	s, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "till.db"), TillID: "S001-T01", BusyTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if _, err := s.ImportFile(ctx, "../../testdata/demo/replica.yaml"); err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	b, _ := s.Spendable(ctx, "2900000000018", now)
	fmt.Println("spendable", b.Spendable, "of", b.Total)

	check := checkout.Check{ID: "S001-T01-000900", StoreID: "S001", Lines: []checkout.Line{
		{No: 1, ProductID: "1001", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("89.90")},
	}}
	in, _ := s.QuoteInput(ctx, check, []string{"2900000000018"}, now)
	res, err := checkout.Quote(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(in.Check.Lines[0].Name, "earns", res.Cards[0].Accrued, "points")
	// Output:
	// spendable 300 of 500
	// Молоко 3,2% 1 л earns 8 points
}
