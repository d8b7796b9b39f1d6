package checkout

import (
	"errors"
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"testing/quick"
	"time"

	"github.com/shopspring/decimal"
)

// allocate: parts sum to the total, are never negative, never go to a zero
// weight and never exceed the exact share rounded up.
func TestAllocateProperties(t *testing.T) {
	f := func(total uint16, ws []uint16) bool {
		weights := make([]decimal.Decimal, len(ws))
		sum := int64(0)
		for i, w := range ws {
			weights[i] = decimal.New(int64(w), -2)
			sum += int64(w)
		}
		parts, ok := allocate(int64(total), weights)
		if sum == 0 {
			return !ok || total == 0
		}
		got := int64(0)
		for i, p := range parts {
			if p < 0 || (ws[i] == 0 && p != 0) {
				return false
			}
			// p ≤ ceil(total × w / sum)
			if p*sum > int64(total)*int64(ws[i])+sum-1 {
				return false
			}
			got += p
		}
		return got == int64(total)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000, Rand: newQuickRand()}); err != nil {
		t.Error(err)
	}
}

// newQuickRand seeds testing/quick so failures reproduce.
func newQuickRand() *mrand.Rand { return mrand.New(mrand.NewSource(20261123)) }

// propIterations is small in normal runs; TILLAGENT_SOAK=1 runs many more.
func propIterations() int {
	if os.Getenv("TILLAGENT_SOAK") != "" {
		return 50000
	}
	return 400
}

// TestQuoteProperties quotes seeded random checks and asserts the
// invariants (checkInvariants): allocations sum to the redemption, the
// redemption never exceeds any limit or line cap, no negative accrual,
// explanations account for everything. Then it returns the check in random
// pieces and asserts the pieces add up to the sale.
func TestQuoteProperties(t *testing.T) {
	seed := uint64(20261123)
	if s := os.Getenv("TILLAGENT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	for i := range propIterations() {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		in := randomInput(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// Maximum first, then a random request up to it.
			r, err := Quote(in)
			if err != nil {
				t.Fatalf("seed %d/%d: Quote: %v", seed, i, err)
			}
			checkInvariants(t, in, r)
			if r.Redemption == nil || !r.Redemption.Max.IsPositive() {
				returnsAddUp(t, in, r, rng)
				return
			}
			scale := in.Programs[0].PointRounding.Scale
			maxU := unitsOf(r.Redemption.Max.d, scale)
			minU := unitsOf(in.Programs[0].Redemption.MinRedeem.d, scale)
			req := Points{fromUnits(minU+rng.Int64N(maxU-minU+1), scale)}
			if in.Programs[0].Redemption.allOrNothing() != "" {
				req = r.Redemption.Max
			}
			in.Redeem = &req
			r, err = Quote(in)
			if err != nil {
				t.Fatalf("seed %d/%d: redeem %s of max %s: %v", seed, i, req, in.Redeem, err)
			}
			checkInvariants(t, in, r)
			if !r.Redemption.Points.Equal(req) {
				t.Errorf("redeemed %s, asked %s", r.Redemption.Points, req)
			}
			returnsAddUp(t, in, r, rng)
			// One step over the maximum is always refused.
			over := Points{r.Redemption.Max.d.Add(in.Programs[0].PointRounding.Unit())}
			in.Redeem = &over
			if _, err := Quote(in); !errors.Is(err, ErrRedeemNotAllowed) {
				t.Errorf("over max: err = %v", err)
			}
		})
	}
}

// returnsAddUp returns every line in random pieces and checks the pieces sum
// to the sale: money paid, points spent and points earned.
func returnsAddUp(t *testing.T, in Input, orig Result, rng *rand.Rand) {
	t.Helper()
	var refund Money
	restored := decimal.Zero
	reversed := map[string]decimal.Decimal{}
	var prev []ReturnLine
	left := map[int]int64{}
	for _, l := range orig.Lines {
		left[l.No] = unitsOf(l.Qty.d, 3)
	}
	for len(left) > 0 {
		var lines []ReturnLine
		for no, u := range left {
			if rng.IntN(2) == 0 {
				continue
			}
			take := 1 + rng.Int64N(u)
			lines = append(lines, ReturnLine{No: no, Qty: Qty{fromUnits(take, 3)}})
			if left[no] -= take; left[no] == 0 {
				delete(left, no)
			}
		}
		if len(lines) == 0 {
			continue
		}
		r, err := Return(ReturnInput{Original: orig, Lines: lines, Previous: prev, Cards: in.Cards, Programs: in.Programs, Now: in.Now.Add(time.Hour), Location: in.Location})
		if err != nil {
			t.Fatalf("Return: %v", err)
		}
		refund = refund.Add(r.Refund).Add(r.Withheld)
		// Explanations account for the money: refund entries minus withheld
		// entries equal the refund.
		var exp Money
		for _, e := range r.Explain {
			switch e.Code {
			case CodeReturnRefund:
				exp = exp.Add(*e.Money)
			case CodeReturnWithheld:
				exp = exp.Sub(*e.Money)
			}
		}
		if !exp.Equal(r.Refund) {
			t.Errorf("return explanations sum to %s, refund %s", exp, r.Refund)
		}
		returnExplained(t, r)
		for _, c := range r.Cards {
			restored = restored.Add(c.Restored.d)
			reversed[c.Code] = reversed[c.Code].Add(c.Reversed.d)
			if c.DebtAdded.IsNegative() || c.WrittenOff.IsNegative() || c.Restored.IsNegative() || c.Reversed.IsNegative() {
				t.Errorf("negative return amounts: %+v", c)
			}
		}
		prev = append(prev, lines...)
	}
	if !refund.Equal(orig.Payable) {
		t.Errorf("refunds sum to %s, paid %s", refund, orig.Payable)
	}
	if red := orig.Redemption; red != nil && !restored.Equal(red.Points.d) {
		t.Errorf("restored %s, spent %s", restored, red.Points)
	}
	for _, c := range orig.Cards {
		if !reversed[c.Code].Equal(c.Accrued.d) {
			t.Errorf("card %s: reversed %s, earned %s", c.Code, reversed[c.Code], c.Accrued)
		}
	}
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func randMoney(rng *rand.Rand, maxKop int64) Money { return Kopecks(rng.Int64N(maxKop + 1)) }

// randomInput builds a random but valid check with one customer card and
// sometimes an agent card, under a random program.
func randomInput(rng *rand.Rand) Input {
	groupsAll := []string{"dairy", "bakery", "alcohol", "grocery", "summer"}
	p := Program{ID: "p", PointValue: MustMoney(pick(rng, "1.00", "0.10", "0.50", "2.00", "0.30", "0.01")),
		PointRounding:      Rounding{Scale: pick[int32](rng, 0, 0, 1, 2), Mode: pick(rng, RoundDown, RoundHalfUp, RoundUp, RoundHalfEven)},
		EarnOnRedeemedPart: rng.IntN(2) == 0, TobaccoEarns: rng.IntN(4) == 0,
		ActivationDays: rng.IntN(3) * 7, ExpiryDays: rng.IntN(3) * 90,
		NegativeBalance: NegativeBalancePolicy{Mode: pick(rng, NegativeForbid, NegativeAllow, NegativeLimit, NegativeDeductRefund), Limit: IntPoints(rng.Int64N(100))},
	}
	for k := range rng.IntN(4) {
		r := AccrualRule{ID: fmt.Sprint("r", k), Kind: pick(rng, AccrualPercent, AccrualFixed, AccrualPerUnit), For: pick(rng, ForCustomer, ForCustomer, ForAgent)}
		r.Percent = Percent{decimal.New(rng.Int64N(150), -1)}
		r.Points = Points{decimal.New(rng.Int64N(2000), -1)}
		if rng.IntN(3) == 0 {
			r.Tiers = &TierTable{Basis: pick(rng, BasisCheck, BasisPrevMonth, BasisAllTime), Levels: []TierLevel{
				{From: Money{}, Percent: MustPercent("1")}, {From: MustMoney("1000"), Percent: MustPercent("3")}, {From: MustMoney("5000"), Percent: MustPercent("7.5")}}}
		}
		if rng.IntN(3) == 0 {
			r.ExcludeGroups = []string{pick(rng, groupsAll...)}
		}
		if rng.IntN(4) == 0 {
			r.IncludeGroups = []string{pick(rng, groupsAll...)}
		}
		if rng.IntN(4) == 0 {
			r.MinCheckSum = randMoney(rng, 300000)
		}
		p.Accrual = append(p.Accrual, r)
	}
	for k := range rng.IntN(4) {
		pr := Promotion{ID: fmt.Sprint("pr", k), Scope: pick(rng, ScopeAll, ScopeGroups, ScopeProducts),
			Multiplier: Factor{decimal.New(10+rng.Int64N(40), -1)}, Groups: []string{pick(rng, groupsAll...)},
			Products: []string{fmt.Sprint("p", rng.IntN(10))}}
		if rng.IntN(2) == 0 {
			pr.From, pr.To = MustLocalTime("2026-11-01"), MustLocalTime("2026-12-01")
		}
		p.Promotions = append(p.Promotions, pr)
	}
	rr := &p.Redemption
	if rng.IntN(2) == 0 {
		rr.MaxCheckPercent = &Percent{decimal.NewFromInt(rng.Int64N(101))}
	}
	if rng.IntN(3) == 0 {
		rr.Segments = []string{"regular"}
	}
	if rng.IntN(3) == 0 {
		rr.MinMarkupPercent = &Percent{decimal.NewFromInt(rng.Int64N(50))}
	}
	if rng.IntN(3) == 0 {
		rr.MinRedeem = IntPoints(rng.Int64N(50))
	}
	rr.AllOrNothing = rng.IntN(8) == 0
	if rng.IntN(6) == 0 {
		rr.AllOrNothingMode = pick(rng, AllOrNothingBalance, AllOrNothingCheck, AllOrNothingCheck)
	}
	if rng.IntN(3) == 0 {
		rr.MonthlyCap = ptrPoints(IntPoints(rng.Int64N(3000)))
	}
	if rng.IntN(2) == 0 {
		p.Discount = &DiscountRules{ID: "d", Mode: pick(rng, DiscountCumulative, DiscountCategory),
			Levels:     []TierLevel{{Percent: MustPercent("1")}, {From: MustMoney("10000"), Percent: MustPercent("5")}},
			Categories: []CategoryDiscount{{Group: "dairy", Percent: MustPercent("10")}, {Group: "summer", Percent: MustPercent("7")}}}
	}
	if rng.IntN(4) == 0 {
		p.MonthlyAccrualCap = ptrPoints(IntPoints(rng.Int64N(500)))
	}

	var lines []Line
	for k := range 1 + rng.IntN(20) {
		l := Line{No: k + 1, ProductID: fmt.Sprint("p", rng.IntN(10)), Price: randMoney(rng, 500000),
			Groups: []string{pick(rng, groupsAll...)}, Segment: pick(rng, "regular", "promo"), Tobacco: rng.IntN(10) == 0}
		if rng.IntN(4) == 0 {
			l.Qty = Qty{decimal.New(1+rng.Int64N(3000), -3)} // weighed
		} else {
			l.Qty = Qty{decimal.NewFromInt(1 + rng.Int64N(5))}
		}
		if rng.IntN(5) != 0 {
			c := Money{l.Price.d.Mul(decimal.New(int64(50+rng.IntN(60)), -2)).Truncate(2)}
			l.LastPurchasePrice = &c
		}
		lines = append(lines, l)
	}
	card := Card{Code: "C", Kind: pick(rng, KindBonus, KindCombined), State: StateActive, ProgramID: "p",
		PurchasesAllTime: randMoney(rng, 2000000), PurchasesPrevMonth: randMoney(rng, 1000000),
		AccruedThisMonth: IntPoints(rng.Int64N(300)), RedeemedThisMonth: IntPoints(rng.Int64N(1000))}
	for k := range rng.IntN(8) {
		l := lot(fmt.Sprint("L", k), fmt.Sprint(rng.Int64N(5000)), pick(rng, 0, -1, 3, 30, 365))
		if rng.IntN(5) == 0 {
			l.ActiveFrom = now.Add(days(2))
		}
		card.Lots = append(card.Lots, l)
	}
	if rng.IntN(6) == 0 {
		card.Debt = IntPoints(rng.Int64N(200))
	}
	cards := []Card{card}
	if rng.IntN(3) == 0 {
		cards = append(cards, Card{Code: "G", Kind: KindReferral, State: StateActive, ProgramID: "p"})
	}
	// Whole-check mode rarely finds a check points can pay in full; make
	// half of them payable (kopeck points, no line limits, a big balance).
	if rr.AllOrNothingMode == AllOrNothingCheck && rng.IntN(2) == 0 {
		p.PointValue = MustMoney("0.01")
		rr.MaxCheckPercent, rr.Segments, rr.MinMarkupPercent, rr.MonthlyCap = nil, nil, nil, nil
		for i := range lines {
			lines[i].Tobacco = false
		}
		cards[0].Lots = append(cards[0].Lots, lot("BIG", "1000000000", 0))
	}
	// A blocked second customer card does nothing and is allowed.
	if rng.IntN(6) == 0 {
		cards = append(cards, Card{Code: "X", Kind: pick(rng, KindBonus, KindDiscount), State: StateBlocked, ProgramID: "p"})
	}
	return input(lines, []Program{p}, cards...)
}

// FuzzQuote drives a random scenario from a seed (the fuzzer mutates the
// seed) and checks the same invariants as TestQuoteProperties. Normal test
// runs execute only the seed corpus below.
func FuzzQuote(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 20261123} {
		f.Add(s, uint64(0))
	}
	f.Fuzz(func(t *testing.T, seed, stream uint64) {
		rng := rand.New(rand.NewPCG(seed, stream))
		in := randomInput(rng)
		r, err := Quote(in)
		if err != nil {
			t.Fatalf("Quote: %v", err)
		}
		checkInvariants(t, in, r)
		if r.Redemption != nil && r.Redemption.Max.IsPositive() {
			mx := r.Redemption.Max
			in.Redeem = &mx
			r, err = Quote(in)
			if err != nil {
				t.Fatalf("redeem max %s: %v", mx, err)
			}
			checkInvariants(t, in, r)
		}
		returnsAddUp(t, in, r, rng)
	})
}

// returnExplained asserts that a return's points are accounted for by its
// explanations as a quote's are (item 14): per card, the restored points
// equal the return.restore line entries, the return.restore_lot entries and
// the lines' restored_points; the reversed points equal the return.reverse
// line entries and the lines' reversed shares; debt and write-off equal
// their entries.
func returnExplained(t *testing.T, r ReturnResult) {
	t.Helper()
	type acc struct{ restore, restoreLot, reverse, debt, writeOff, lineRestored, lineReversed decimal.Decimal }
	by := map[string]*acc{}
	get := func(code string) *acc {
		if by[code] == nil {
			by[code] = &acc{}
		}
		return by[code]
	}
	for _, e := range r.Explain {
		if e.Code != CodeReturnRefund && e.Rule == "" {
			t.Errorf("return explanation without a rule: %+v", e)
		}
		if e.Points == nil {
			continue
		}
		a := get(e.Card)
		switch e.Code {
		case CodeReturnRestore:
			a.restore = a.restore.Add(e.Points.d)
		case CodeReturnRestoreLot:
			a.restoreLot = a.restoreLot.Add(e.Points.d)
		case CodeReturnReverse:
			a.reverse = a.reverse.Add(e.Points.d)
		case CodeReturnDebt:
			a.debt = a.debt.Add(e.Points.d)
		case CodeReturnWriteOff:
			a.writeOff = a.writeOff.Add(e.Points.d)
		}
	}
	restoredLines := decimal.Zero
	for _, l := range r.Lines {
		restoredLines = restoredLines.Add(l.RestoredPoints.d)
		for _, rv := range l.Reversed {
			a := get(rv.Card)
			a.lineReversed = a.lineReversed.Add(rv.Points.d)
		}
	}
	restoredCards := decimal.Zero
	for _, c := range r.Cards {
		a := get(c.Code)
		restoredCards = restoredCards.Add(c.Restored.d)
		for what, pair := range map[string][2]decimal.Decimal{
			"restored vs return.restore":      {c.Restored.d, a.restore},
			"restored vs return.restore_lot":  {c.Restored.d, a.restoreLot},
			"reversed vs return.reverse":      {c.Reversed.d, a.reverse},
			"reversed vs lines' reversed":     {c.Reversed.d, a.lineReversed},
			"debt added vs return.debt":       {c.DebtAdded.d, a.debt},
			"written off vs return.write_off": {c.WrittenOff.d, a.writeOff},
		} {
			if !pair[0].Equal(pair[1]) {
				t.Errorf("card %s: %s: %s ≠ %s", c.Code, what, pair[0], pair[1])
			}
		}
	}
	if !restoredLines.Equal(restoredCards) {
		t.Errorf("lines' restored points %s ≠ cards' restored %s", restoredLines, restoredCards)
	}
}
