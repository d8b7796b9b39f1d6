package checkout

import (
	"errors"
	"testing"
)

// saleAndReturnSetup sells two lines with a redemption and returns the
// quote input, its result and the card as the store would hold it after.
//
// Line 1: 3 × 100.00 = 300.00; line 2: 700.00. 200 points spent: 60.00 and
// 140.00 (in proportion to the caps 300:700). 5 % on the money part: 12 + 28
// = 40 points into a new lot.
func saleAndReturnSetup(t *testing.T, policy NegativeBalancePolicy) (Program, Result, Card) {
	t.Helper()
	p := prog(withRules(percentRule("base", "5")), func(p *Program) { p.NegativeBalance = policy })
	in := input([]Line{ln(1, "a", "100.00", "3"), ln(2, "b", "700.00", "1")}, []Program{p},
		crd("A", KindBonus, StateActive, lot("L", "500", 30)))
	in.Redeem = pts("200")
	r := mustQuote(t, in)
	eqPoints(t, "accrued", r.Cards[0].Accrued, "40")
	after := crd("A", KindBonus, StateActive, lot("L", "300", 30),
		Lot{ID: "N", Points: MustPoints("40"), Remaining: MustPoints("40"), ActiveFrom: now, CheckID: "c1"})
	return p, r, after
}

func retIn(orig Result, p Program, c Card, lines ...ReturnLine) ReturnInput {
	return ReturnInput{Original: orig, Lines: lines, Cards: []Card{c}, Programs: []Program{p}, Now: now.Add(days(2)), Location: msk}
}

func rl(no int, qty string) ReturnLine { return ReturnLine{No: no, Qty: MustQty(qty)} }

func mustReturn(t *testing.T, in ReturnInput) ReturnResult {
	t.Helper()
	r, err := Return(in)
	if err != nil {
		t.Fatalf("Return: %v", err)
	}
	return r
}

// Item 13: a full return refunds the money part, restores spent points to
// their lot and takes back the accrual from the check's own lot.
func TestReturnFull(t *testing.T) {
	p, orig, c := saleAndReturnSetup(t, NegativeBalancePolicy{})
	r := mustReturn(t, retIn(orig, p, c, rl(1, "3"), rl(2, "1")))
	eqMoney(t, "refund", r.Refund, "800.00")
	if len(r.Cards) != 1 {
		t.Fatalf("cards = %+v", r.Cards)
	}
	cr := r.Cards[0]
	eqPoints(t, "restored", cr.Restored, "200")
	eqPoints(t, "reversed", cr.Reversed, "40")
	if len(cr.LotsRestored) != 1 || cr.LotsRestored[0].LotID != "L" || len(cr.LotsDebited) != 1 || cr.LotsDebited[0].LotID != "N" {
		t.Errorf("lots restored %v debited %v", cr.LotsRestored, cr.LotsDebited)
	}
	eqPoints(t, "balance before", cr.BalanceBefore, "340")
	eqPoints(t, "balance after", cr.BalanceAfter, "500")
	eqPoints(t, "debt", cr.DebtAdded, "0")
}

// Partial returns add up to the full return, whatever the order.
func TestReturnPartialAddsUp(t *testing.T) {
	p, orig, c := saleAndReturnSetup(t, NegativeBalancePolicy{})
	first := mustReturn(t, retIn(orig, p, c, rl(1, "1")))
	eqMoney(t, "first refund", first.Refund, "80.00")
	eqPoints(t, "first restored", first.Cards[0].Restored, "20")
	eqPoints(t, "first reversed", first.Cards[0].Reversed, "4")
	in := retIn(orig, p, c, rl(1, "2"), rl(2, "1"))
	in.Previous = []ReturnLine{rl(1, "1")}
	second := mustReturn(t, in)
	eqMoney(t, "second refund", second.Refund, "720.00")
	eqPoints(t, "second restored", second.Cards[0].Restored, "180")
	eqPoints(t, "second reversed", second.Cards[0].Reversed, "36")
}

// Thirds do not divide evenly: cumulative rounding makes three returns of
// one unit sum exactly to the line.
func TestReturnThirds(t *testing.T) {
	p := prog()
	orig := Result{CheckID: "c9", Lines: []LineResult{{
		No: 1, ProductID: "a", Qty: MustQty("3"), Sum: MustMoney("110.00"), Redeemed: MustMoney("10.00"),
		RedeemedPoints: MustPoints("10"), Payable: MustMoney("100.00"),
		Accruals: []LineAccrual{{Card: "A", Points: MustPoints("7")}},
	}}, Redemption: &Redemption{Card: "A", Points: MustPoints("10"), Money: MustMoney("10.00"),
		LotsConsumed: []LotUse{{"L1", MustPoints("4")}, {"L2", MustPoints("6")}}}}
	c := crd("A", KindBonus, StateActive, lot("L1", "0", 10), lot("L2", "0", 20), lot("X", "100", 5))
	wantRefund := []string{"33.33", "33.34", "33.33"}
	wantRestored := []string{"3", "3", "4"}
	wantReversed := []string{"2", "2", "3"}
	var prev []ReturnLine
	var restoredL1, restoredL2 Points
	for i := range 3 {
		in := ReturnInput{Original: orig, Lines: []ReturnLine{rl(1, "1")}, Previous: prev, Cards: []Card{c}, Programs: []Program{p}, Now: now}
		r := mustReturn(t, in)
		eqMoney(t, "refund", r.Refund, wantRefund[i])
		eqPoints(t, "restored", r.Cards[0].Restored, wantRestored[i])
		eqPoints(t, "reversed", r.Cards[0].Reversed, wantReversed[i])
		for _, u := range r.Cards[0].LotsRestored {
			switch u.LotID {
			case "L1":
				restoredL1 = restoredL1.Add(u.Points)
			case "L2":
				restoredL2 = restoredL2.Add(u.Points)
			}
		}
		prev = append(prev, rl(1, "1"))
	}
	// Each lot gets back exactly what was taken from it, latest first.
	eqPoints(t, "L1 restored", restoredL1, "4")
	eqPoints(t, "L2 restored", restoredL2, "6")
	// A fourth unit does not exist.
	in := ReturnInput{Original: orig, Lines: []ReturnLine{rl(1, "1")}, Previous: prev, Cards: []Card{c}, Programs: []Program{p}, Now: now}
	if _, err := Return(in); !errors.Is(err, ErrReturnExceedsSale) {
		t.Errorf("over-return: err = %v", err)
	}
}

// Reversed points already spent: the negative-balance policy decides.
func TestReturnNegativeBalance(t *testing.T) {
	orig := Result{CheckID: "c7", Lines: []LineResult{{
		No: 1, ProductID: "a", Qty: MustQty("1"), Sum: MustMoney("400.00"), Payable: MustMoney("400.00"),
		Accruals: []LineAccrual{{Card: "A", Points: MustPoints("40")}},
	}}}
	spent := Lot{ID: "N", Points: MustPoints("40"), Remaining: MustPoints("10"), ActiveFrom: now.Add(-days(1)), CheckID: "c7"}
	tests := []struct {
		name                 string
		policy               NegativeBalancePolicy
		value                string
		payable              string
		debt                 string
		wantDebt, wantOff    string
		wantWithheld, refund string
		wantBalance          string
	}{
		{"forbid (default)", NegativeBalancePolicy{}, "1.00", "400.00", "0", "0", "30", "0.00", "400.00", "0"},
		{"allow", NegativeBalancePolicy{Mode: NegativeAllow}, "1.00", "400.00", "0", "30", "0", "0.00", "400.00", "-30"},
		{"limit", NegativeBalancePolicy{Mode: NegativeLimit, Limit: MustPoints("20")}, "1.00", "400.00", "0", "20", "10", "0.00", "400.00", "-20"},
		{"limit with old debt", NegativeBalancePolicy{Mode: NegativeLimit, Limit: MustPoints("20")}, "1.00", "400.00", "15", "5", "25", "0.00", "400.00", "-20"},
		{"deduct from refund", NegativeBalancePolicy{Mode: NegativeDeductRefund}, "1.00", "400.00", "0", "0", "0", "30.00", "370.00", "0"},
		{"deduct at 0.10", NegativeBalancePolicy{Mode: NegativeDeductRefund}, "0.10", "400.00", "0", "0", "0", "3.00", "397.00", "0"},
		{"deduct, refund too small", NegativeBalancePolicy{Mode: NegativeDeductRefund}, "1.00", "12.00", "0", "0", "18", "12.00", "0.00", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(func(p *Program) { p.NegativeBalance = tt.policy; p.PointValue = MustMoney(tt.value) })
			o := orig
			o.Lines = []LineResult{orig.Lines[0]}
			o.Lines[0].Payable = MustMoney(tt.payable)
			c := crd("A", KindBonus, StateActive, spent)
			c.Debt = MustPoints(tt.debt)
			r := mustReturn(t, ReturnInput{Original: o, Lines: []ReturnLine{rl(1, "1")}, Cards: []Card{c}, Programs: []Program{p}, Now: now})
			cr := r.Cards[0]
			eqPoints(t, "reversed", cr.Reversed, "40")
			eqPoints(t, "debt added", cr.DebtAdded, tt.wantDebt)
			eqPoints(t, "written off", cr.WrittenOff, tt.wantOff)
			eqMoney(t, "withheld", cr.Withheld, tt.wantWithheld)
			eqMoney(t, "refund", r.Refund, tt.refund)
			// Balance after = −(old debt + added); the lot is emptied.
			want := MustPoints(tt.wantBalance)
			if tt.debt != "0" {
				want = MustPoints(tt.debt).Add(cr.DebtAdded).Neg()
			}
			eqPoints(t, "balance after", cr.BalanceAfter, want.String())
		})
	}
}

func TestReturnErrors(t *testing.T) {
	p, orig, c := saleAndReturnSetup(t, NegativeBalancePolicy{})
	tests := []struct {
		name string
		in   ReturnInput
		want error
	}{
		{"unknown line", retIn(orig, p, c, rl(9, "1")), ErrInvalidInput},
		{"too many", retIn(orig, p, c, rl(2, "2")), ErrReturnExceedsSale},
		{"nothing", retIn(orig, p, c), ErrInvalidInput},
		{"zero qty", retIn(orig, p, c, rl(1, "0")), ErrInvalidInput},
		{"card missing", ReturnInput{Original: orig, Lines: []ReturnLine{rl(1, "1")}, Programs: []Program{p}, Now: now}, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Return(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// Restored points go back to their lot with its expiry: a lot that has
// lapsed meanwhile gets them back but they do not count.
func TestReturnRestoreExpiredLot(t *testing.T) {
	p, orig, _ := saleAndReturnSetup(t, NegativeBalancePolicy{})
	late := now.Add(days(40)) // lot L expired at now+30d
	c := crd("A", KindBonus, StateActive, lot("L", "300", 30),
		Lot{ID: "N", Points: MustPoints("40"), Remaining: MustPoints("40"), ActiveFrom: now, CheckID: "c1"})
	in := retIn(orig, p, c, rl(2, "1"))
	in.Now = late
	r := mustReturn(t, in)
	cr := r.Cards[0]
	eqPoints(t, "restored", cr.Restored, "140")
	eqPoints(t, "reversed", cr.Reversed, "28")
	eqPoints(t, "balance before", cr.BalanceBefore, "40")
	eqPoints(t, "balance after", cr.BalanceAfter, "12")
}
