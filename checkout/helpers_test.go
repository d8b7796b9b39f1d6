package checkout

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// msk is a fixed Moscow zone so tests do not depend on the zone database.
var msk = time.FixedZone("MSK", 3*3600)

// now is the default sale moment: 2026-11-23 12:00 Moscow time.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, msk)

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// ln builds a line: number, product, price, qty.
func ln(no int, product, price, qty string, mods ...func(*Line)) Line {
	l := Line{No: no, ProductID: product, Price: MustMoney(price), Qty: MustQty(qty)}
	for _, m := range mods {
		m(&l)
	}
	return l
}

func groups(g ...string) func(*Line) { return func(l *Line) { l.Groups = g } }
func segment(s string) func(*Line)   { return func(l *Line) { l.Segment = s } }
func tobacco(l *Line)                { l.Tobacco = true }
func cost(c string) func(*Line) {
	return func(l *Line) { m := MustMoney(c); l.LastPurchasePrice = &m }
}

// prog builds program "p": 1 point = 1 rouble, whole points rounded down,
// no rules unless mods add them.
func prog(mods ...func(*Program)) Program {
	p := Program{ID: "p", Name: "test", PointValue: MustMoney("1.00")}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func percentRule(id, pct string) AccrualRule {
	return AccrualRule{ID: id, Kind: AccrualPercent, Percent: MustPercent(pct)}
}

func withRules(r ...AccrualRule) func(*Program) {
	return func(p *Program) { p.Accrual = append(p.Accrual, r...) }
}

func crd(code string, kind CardKind, state CardState, lots ...Lot) Card {
	return Card{Code: code, Kind: kind, State: state, ProgramID: "p", Lots: lots}
}

// lot builds an active lot with remaining = points, active since a day ago,
// expiring in expDays (0 = never).
func lot(id, pts string, expDays int) Lot {
	l := Lot{ID: id, Points: MustPoints(pts), Remaining: MustPoints(pts), AccruedAt: now.Add(-days(30)), ActiveFrom: now.Add(-days(1))}
	if expDays != 0 {
		e := now.Add(days(expDays))
		l.ExpiresAt = &e
	}
	return l
}

func pts(s string) *Points  { p := MustPoints(s); return &p }
func pct(s string) *Percent { p := MustPercent(s); return &p }

func input(lines []Line, programs []Program, cards ...Card) Input {
	return Input{
		Check:    Check{ID: "c1", StoreID: "s1", Lines: lines},
		Cards:    cards,
		Programs: programs,
		Now:      now,
		Location: msk,
	}
}

func mustQuote(t *testing.T, in Input) Result {
	t.Helper()
	r, err := Quote(in)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	checkInvariants(t, in, r)
	return r
}

func eqMoney(t *testing.T, what string, got Money, want string) {
	t.Helper()
	if got.String() != MustMoney(want).String() {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func eqPoints(t *testing.T, what string, got Points, want string) {
	t.Helper()
	if !got.Equal(MustPoints(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func cardRes(t *testing.T, r Result, code string) CardResult {
	t.Helper()
	for _, c := range r.Cards {
		if c.Code == code {
			return c
		}
	}
	t.Fatalf("card %s not in result", code)
	return CardResult{}
}

// checkInvariants asserts what must hold for every quote: allocations sum to
// their totals and respect caps, no negative amount, explanations account
// for every point and kopeck.
func checkInvariants(t *testing.T, in Input, r Result) {
	t.Helper()
	var sumRed, sumDisc Money
	redPts := decimal.Zero
	accByCard := map[string]decimal.Decimal{}
	for i, l := range r.Lines {
		if l.Redeemed.IsNegative() || l.Discount.IsNegative() || l.Payable.IsNegative() || l.RedeemedPoints.IsNegative() {
			t.Errorf("line %d: negative amount: %+v", l.No, l)
		}
		if l.Redeemed.Cmp(l.RedeemCap) > 0 {
			t.Errorf("line %d: redeemed %s over cap %s", l.No, l.Redeemed, l.RedeemCap)
		}
		if in.Check.Lines[i].Tobacco && (!l.Redeemed.IsZero() || !l.Discount.IsZero() || !l.RedeemedPoints.IsZero()) {
			t.Errorf("line %d: tobacco line got discount %s / points %s", l.No, l.Discount, l.Redeemed)
		}
		if !l.Sum.Sub(l.Discount).Sub(l.Redeemed).Equal(l.Payable) {
			t.Errorf("line %d: sum − discount − redeemed ≠ payable", l.No)
		}
		sumRed = sumRed.Add(l.Redeemed)
		sumDisc = sumDisc.Add(l.Discount)
		redPts = redPts.Add(l.RedeemedPoints.d)
		for _, a := range l.Accruals {
			if a.Points.IsNegative() {
				t.Errorf("line %d: negative accrual %s", l.No, a.Points)
			}
			accByCard[a.Card] = accByCard[a.Card].Add(a.Points.d)
		}
	}
	if !sumRed.Equal(r.Redeemed) || !sumDisc.Equal(r.Discount) {
		t.Errorf("line totals do not sum: redeemed %s vs %s, discount %s vs %s", sumRed, r.Redeemed, sumDisc, r.Discount)
	}
	if !r.Sum.Sub(r.Discount).Sub(r.Redeemed).Equal(r.Payable) {
		t.Errorf("sum − discount − redeemed ≠ payable")
	}
	if red := r.Redemption; red != nil {
		if !red.Money.Equal(r.Redeemed) {
			t.Errorf("redemption money %s ≠ Σ lines %s", red.Money, r.Redeemed)
		}
		if !red.Points.d.Equal(redPts) {
			t.Errorf("redemption points %s ≠ Σ lines %s", red.Points, redPts)
		}
		for _, l := range red.Limits {
			if red.Points.Cmp(l.Points) > 0 || red.Max.Cmp(l.Points) > 0 {
				t.Errorf("redeemed %s / max %s over limit %s = %s", red.Points, red.Max, l.Code, l.Points)
			}
		}
		lotSum := decimal.Zero
		for _, u := range red.LotsConsumed {
			lotSum = lotSum.Add(u.Points.d)
		}
		if !lotSum.Equal(red.Points.d) {
			t.Errorf("lots consumed %s ≠ redeemed %s", lotSum, red.Points)
		}
	} else if !r.Redeemed.IsZero() {
		t.Errorf("redeemed %s without a redemption", r.Redeemed)
	}
	// Explanations: accrual entries per card sum to the accrual; discount
	// entries to the discount; redemption line entries to the redemption.
	expAcc := map[string]decimal.Decimal{}
	expDisc := decimal.Zero
	expRed := decimal.Zero
	for _, e := range r.Explain {
		if e.Detail == "" || e.Code == "" {
			t.Errorf("explanation without code or detail: %+v", e)
		}
		switch e.Code {
		case CodeAccrualPercent, CodeAccrualFixed, CodeAccrualPerUnit, CodePromotion, CodeAccrualRounding, CodeAccrualMonthlyCap:
			expAcc[e.Card] = expAcc[e.Card].Add(e.Points.d)
		case CodeDiscountCumulative, CodeDiscountCategory:
			expDisc = expDisc.Add(e.Money.d)
		case CodeRedeemLine:
			expRed = expRed.Add(e.Money.d)
		}
	}
	for _, c := range r.Cards {
		if c.Accrued.IsNegative() {
			t.Errorf("card %s: negative accrual %s", c.Code, c.Accrued)
		}
		if !c.Accrued.d.Equal(accByCard[c.Code]) {
			t.Errorf("card %s: accrued %s ≠ Σ line accruals %s", c.Code, c.Accrued, accByCard[c.Code])
		}
		if !c.Accrued.d.Equal(expAcc[c.Code]) {
			t.Errorf("card %s: accrued %s ≠ Σ explanations %s", c.Code, c.Accrued, expAcc[c.Code])
		}
	}
	if !expDisc.Equal(r.Discount.d) {
		t.Errorf("discount %s ≠ Σ explanations %s", r.Discount, expDisc)
	}
	if !expRed.Equal(r.Redeemed.d) {
		t.Errorf("redeemed %s ≠ Σ explanations %s", r.Redeemed, expRed)
	}
}
