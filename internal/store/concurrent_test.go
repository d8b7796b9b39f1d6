package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"tillagent/checkout"
)

// TestConcurrentQuotesAndSales quotes on the read pool while sales commit on
// the writer (run with -race). Every sale must land and every quote must
// see a consistent card: its balance is 500 − 1 × (sales committed so far)
// for some number of sales between the counts before and after the quote.
func TestConcurrentQuotesAndSales(t *testing.T) {
	s := mustDemo(t)
	ctx := context.Background()
	const writers, salesEach, readers, quotesEach = 2, 15, 3, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < salesEach; i++ {
				_, err := s.Append(ctx, []Entry{{CheckID: fmt.Sprintf("W%d-%d", w, i), CardCode: "2900000000018", Kind: KindRedemption,
					Points: dec("-1"), AmountKop: 100, Lots: []LotChange{{LotID: "L-13-2", Delta: dec("-1")}}}})
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < quotesEach; i++ {
				in, err := s.QuoteInput(ctx, basket(), []string{"2900000000018"}, demoNow)
				if err != nil {
					errs <- err
					return
				}
				total := checkout.Points{}
				for _, l := range in.Cards[0].Lots {
					total = total.Add(l.Remaining)
				}
				if n := 500 - total.Decimal().IntPart(); n < 0 || n > writers*salesEach {
					errs <- fmt.Errorf("quote saw balance %s: not 500 minus a number of sales", total)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := s.Spendable(ctx, "2900000000018", demoNow)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(300 - writers*salesEach); b.Spendable.String() != want {
		t.Fatalf("spendable after %d sales = %s, want %s", writers*salesEach, b.Spendable, want)
	}
}
