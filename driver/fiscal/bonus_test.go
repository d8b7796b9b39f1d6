package fiscal

import (
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

func specBasket() []PlainLine {
	return []PlainLine{
		{Name: "Молоко", Qty: Units(2), Price: 15000, VAT: VAT20},
		{Name: "Хлеб", Qty: Units(1), Price: 9990, VAT: VAT10},
	}
}

// assertFFD checks the FFD arithmetic independently of Amounts.
func assertFFD(t *testing.T, r Receipt) {
	t.Helper()
	var sum Money
	for _, l := range r.Lines {
		sum += l.Sum
		if d := int64(l.Price)*int64(l.Qty) - int64(l.Sum)*1_000_000; d > 1_000_000 || d < -1_000_000 {
			t.Errorf("%s line %q: 1043 %s vs 1079 %s × %s", r.ID, l.Name, l.Sum, l.Price, l.Qty)
		}
	}
	a, err := r.Amounts()
	if err != nil {
		t.Fatalf("%s: %v", r.ID, err)
	}
	if a.Total != sum || a.Cash+a.Electronic+a.Prepayment+a.Postpayment+a.CounterProvided != a.Total {
		t.Errorf("%s: amounts %+v, Σ1043 %s", r.ID, a, sum)
	}
}

func TestBuildReceiptSpecExample(t *testing.T) {
	r, err := BuildReceipt(BonusCheck{ID: "a", Lines: specBasket(), Redeemed: []Money{7502, 2498}, Money: Payments{Cash: 29990}})
	if err != nil {
		t.Fatal(err)
	}
	assertFFD(t, r)
	if len(r.Lines) != 2 || r.Lines[0].Price != 11249 || r.Lines[0].Sum != 22498 || r.Lines[1].Price != 7492 || r.Payments.CounterProvided != 0 {
		t.Errorf("discount: %+v", r.Lines)
	}

	r, err = BuildReceipt(BonusCheck{ID: "b", Lines: specBasket(), Redeemed: []Money{7502, 2498}, Mode: CounterProvisionMode, Money: Payments{Cash: 29990}})
	if err != nil {
		t.Fatal(err)
	}
	assertFFD(t, r)
	if r.Lines[0].Price != 15000 || r.Total() != 39990 || r.Payments.CounterProvided != 10000 || r.Payments.Cash != 29990 {
		t.Errorf("counter-provision: %+v %+v", r.Lines, r.Payments)
	}
}

func TestBuildReceiptSplitsInexactLine(t *testing.T) {
	// 3 × 100.00 minus 1.00 = 299.00: not divisible by 3 → 1 × 99.66 + 2 × 99.67.
	r, err := BuildReceipt(BonusCheck{ID: "s", Lines: []PlainLine{{Name: "Сок", Qty: Units(3), Price: 10000, VAT: VAT20}},
		Redeemed: []Money{100}, Money: Payments{Cash: 29900}})
	if err != nil {
		t.Fatal(err)
	}
	assertFFD(t, r)
	if len(r.Lines) != 2 || r.Lines[0].Qty != Units(1) || r.Lines[0].Price != 9966 || r.Lines[1].Qty != Units(2) || r.Lines[1].Price != 9967 {
		t.Errorf("split: %+v", r.Lines)
	}
	if r.Total() != 29900 {
		t.Errorf("total %s", r.Total())
	}
}

func TestBuildReceiptWeighedLine(t *testing.T) {
	// 0.750 kg × 120.00 = 90.00, minus 10.01 → 79.99: one line, price rounded, ± 1 kop.
	r, err := BuildReceipt(BonusCheck{ID: "w", Lines: []PlainLine{{Name: "Сыр", Qty: 750_000, Price: 12000, VAT: VAT10, Measure: 11}},
		Redeemed: []Money{1001}, Money: Payments{Cash: 7999}})
	if err != nil {
		t.Fatal(err)
	}
	assertFFD(t, r)
	if len(r.Lines) != 1 || r.Lines[0].Sum != 7999 || r.Lines[0].Measure != 11 {
		t.Errorf("weighed: %+v", r.Lines)
	}
	// 3.5 kg: the ± 1 kop tolerance cannot hold for every sum, so the line splits.
	r, err = BuildReceipt(BonusCheck{ID: "w2", Lines: []PlainLine{{Name: "Картофель", Qty: 3_500_000, Price: 4990, VAT: VAT10}},
		Redeemed: []Money{1002}, Money: Payments{Cash: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	assertFFD(t, r)
	if r.Total() != 17465-1002 {
		t.Errorf("total %s", r.Total())
	}
}

func TestBuildReceiptAllPoints(t *testing.T) {
	for _, mode := range []BonusMode{DiscountMode, CounterProvisionMode} {
		r, err := BuildReceipt(BonusCheck{ID: "z", Lines: specBasket(), Redeemed: []Money{30000, 9990}, Mode: mode,
			Loyalty: &LoyaltyInfo{Card: "1234", Spent: decimal.NewFromInt(39990).Shift(-2)}})
		if err != nil {
			t.Fatal(err)
		}
		assertFFD(t, r)
		if r.Total() != 0 || r.Payments != (Payments{}) || r.Lines[0].Price != 0 || len(r.Lines) != 2 {
			t.Errorf("%v: %+v", mode, r)
		}
	}
}

func TestBuildReceiptErrors(t *testing.T) {
	cases := map[string]BonusCheck{
		"too much redeemed": {Lines: specBasket(), Redeemed: []Money{30001, 0}, Money: Payments{Cash: 99999}},
		"short payment":     {Lines: specBasket(), Redeemed: []Money{100, 0}, Money: Payments{Cash: 100}},
		"count mismatch":    {Lines: specBasket(), Redeemed: []Money{100}},
		"cashless too big":  {Lines: specBasket(), Money: Payments{Electronic: 50000}},
		"negative":          {Lines: specBasket(), Redeemed: []Money{-1, 0}, Money: Payments{Cash: 50000}},
	}
	for name, c := range cases {
		if _, err := BuildReceipt(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestBuildReceiptLoyaltyLines(t *testing.T) {
	r, err := BuildReceipt(BonusCheck{ID: "l", Lines: specBasket(), Redeemed: []Money{7502, 2498}, Money: Payments{Cash: 29990},
		Loyalty: &LoyaltyInfo{TagName: "Карта Клуба", Card: "7000 0000 0000 4321", Spent: decimal.NewFromInt(100), Earned: decimal.NewFromInt(3), Balance: decimal.NewFromInt(5)}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Loyalty.Name != "Карта Клуба" || r.Loyalty.Value != "*4321 списано 100 начислено 3 баланс 5" {
		t.Errorf("1084: %+v", r.Loyalty)
	}
	want := []string{"Карта Клуба *4321", "Сумма без скидки: 399.90", "Оплачено баллами: 100 (100.00 руб.)", "Начислено баллов: 3", "Баланс баллов: 5"}
	if len(r.Text) != len(want) {
		t.Fatalf("text %q", r.Text)
	}
	for i := range want {
		if r.Text[i] != want[i] {
			t.Errorf("text[%d] = %q, want %q", i, r.Text[i], want[i])
		}
	}
}

// Random baskets and random kopeck-exact allocations: every receipt keeps the FFD arithmetic
// and the money due equals the total minus the points.
func TestBuildReceiptRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		n := 1 + rng.IntN(8)
		var lines []PlainLine
		var total Money
		for j := 0; j < n; j++ {
			q := Units(int64(1 + rng.IntN(5)))
			if rng.IntN(3) == 0 {
				q = Qty(1_000 + rng.Int64N(5_000_000)) // weighed
			}
			l := PlainLine{Name: "x", Qty: q, Price: Money(1 + rng.Int64N(100000)), VAT: VAT20}
			l.Sum = mulRound(l.Price, l.Qty)
			if l.Sum == 0 {
				l.Sum = 1
				l.Price = Money((1_000_000 + int64(q) - 1) / int64(q))
				l.Sum = mulRound(l.Price, l.Qty)
			}
			lines = append(lines, l)
			total += l.Sum
		}
		red := make([]Money, n)
		var points Money
		for j, l := range lines {
			if rng.IntN(2) == 0 {
				red[j] = Money(rng.Int64N(int64(l.Sum) + 1))
				points += red[j]
			}
		}
		mode := BonusMode(rng.IntN(2))
		r, err := BuildReceipt(BonusCheck{ID: "r", Lines: lines, Redeemed: red, Mode: mode, Money: Payments{Cash: total - points}})
		if err != nil {
			t.Fatalf("case %d (%v): %v\nlines %+v\nredeemed %v", i, mode, err, lines, red)
		}
		assertFFD(t, r)
		a, _ := r.Amounts()
		if points == total {
			if a.Total != 0 {
				t.Fatalf("case %d: all points but total %s", i, a.Total)
			}
			continue
		}
		if mode == DiscountMode && (a.Total != total-points || a.CounterProvided != 0) {
			t.Fatalf("case %d: discount total %s, want %s", i, a.Total, total-points)
		}
		if mode == CounterProvisionMode && (a.Total != total || a.CounterProvided != points) {
			t.Fatalf("case %d: counter total %s 1217 %s", i, a.Total, a.CounterProvided)
		}
	}
}

func TestMoney(t *testing.T) {
	if Money(39990).String() != "399.90" || Money(-5).String() != "-0.05" {
		t.Error("String")
	}
	if m, err := MoneyFromDecimal(decimal.RequireFromString("12.34")); err != nil || m != 1234 {
		t.Error(m, err)
	}
	if _, err := MoneyFromDecimal(decimal.RequireFromString("0.001")); err == nil {
		t.Error("sub-kopeck accepted")
	}
}
