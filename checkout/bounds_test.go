package checkout

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// Prices, quantities and the check total are bounded at validation, with an
// error naming the line, so no sum is ever converted to int64 kopecks out of
// range. The review's case: qty 1e30 × price 1e30 used to give a line sum of
// 1e60 and a wrapped check sum of "46116860184273879.04".
func TestAmountBounds(t *testing.T) {
	big := func(s string) func(*Line) {
		return func(l *Line) { l.Qty = Qty{decimal.RequireFromString(s)} }
	}
	bigPrice := func(s string) func(*Line) {
		return func(l *Line) { l.Price = Money{decimal.RequireFromString(s)} }
	}
	tests := []struct {
		name  string
		lines []Line
		want  string // error text; "" = accepted
	}{
		{"price at the bound", []Line{ln(1, "a", "100000000.00", "1")}, ""},
		{"price over", []Line{ln(1, "a", "1.00", "1"), ln(2, "b", "100000000.01", "1")}, "line 2: price 100000000.01 over the maximum 100000000.00"},
		{"qty at the bound", []Line{ln(1, "a", "0.01", "1000000")}, ""},
		{"qty over", []Line{ln(1, "a", "0.01", "1000000.001")}, "line 1: quantity 1000000.001 over the maximum 1000000"},
		{"review case", []Line{ln(1, "a", "1.00", "1", big("1e30"), bigPrice("1e30"))}, "line 1: price"},
		{"check total at the bound", []Line{ln(1, "a", "100000000.00", "50"), ln(2, "b", "100000000.00", "50")}, ""},
		{"line sum over", []Line{ln(1, "a", "100000000.00", "101")}, "line 1: sum 10100000000.00 over the maximum check total 10000000000.00"},
		{"given sum over", []Line{ln(1, "a", "1.00", "1", func(l *Line) { l.Sum = MustMoney("10000000000.01") })}, "line 1: sum 10000000000.01 over"},
		{"check total over", []Line{ln(1, "a", "100000000.00", "60"), ln(2, "b", "100000000.00", "40"), ln(3, "c", "0.01", "1")}, "check total 10000000000.01 over the maximum 10000000000.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.lines, []Program{prog(withRules(percentRule("base", "1")))}, crd("A", KindBonus, StateActive, lot("L", "1000", 0)))
			r, err := Quote(in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Quote: %v", err)
				}
				checkInvariants(t, in, r)
				total := decimal.Zero
				for _, l := range tt.lines {
					total = total.Add(l.Price.d.Mul(l.Qty.d))
				}
				eqMoney(t, "sum", r.Sum, total.StringFixed(2))
				return
			}
			if !errors.Is(err, ErrOutOfRange) || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrOutOfRange with %q", err, tt.want)
			}
		})
	}
}

// Amounts the engine cannot bound up front (program parameters times
// quantities) are converted with a range check: an overflow is an error,
// never a wrapped number or a crash.
func TestOverflowIsAnError(t *testing.T) {
	in := input([]Line{ln(1, "a", "1.00", "1000")}, []Program{prog(withRules(AccrualRule{ID: "huge", Kind: AccrualPerUnit, Points: MustPoints("1e18")}))},
		crd("A", KindBonus, StateActive))
	_, err := Quote(in)
	if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "quote check c1:") {
		t.Errorf("accrual of 1e21 points: err = %v, want ErrOutOfRange", err)
	}
	in = input([]Line{ln(1, "a", "1.00", "1")}, []Program{prog(func(p *Program) { p.PointValue = MustMoney("1000000.01") })}, crd("A", KindBonus, StateActive))
	if _, err := Quote(in); !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "program p: point value 1000000.01 over the maximum 1000000.00") {
		t.Errorf("point value: err = %v", err)
	}
}

func TestMoneyKopecksRange(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"123.45", 12345, true},
		{"-0.01", -1, true},
		{"92233720368547758.07", 9223372036854775807, true},
		{"-92233720368547758.08", -9223372036854775808, true},
		{"92233720368547758.08", 0, false},
		{"1e30", 0, false},
		{"-1e60", 0, false},
	} {
		m := Money{decimal.RequireFromString(tt.in)}
		k, err := m.CheckedKopecks()
		if tt.ok != (err == nil) || k != tt.want {
			t.Errorf("%s: CheckedKopecks = %d, %v; want %d, ok %v", tt.in, k, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrOutOfRange) {
			t.Errorf("%s: err = %v, want ErrOutOfRange", tt.in, err)
		}
		func() {
			defer func() {
				if v := recover(); (v != nil) == tt.ok {
					t.Errorf("%s: Kopecks panic = %v, want panic %v", tt.in, v, !tt.ok)
				}
			}()
			if got := m.Kopecks(); got != tt.want {
				t.Errorf("%s: Kopecks = %d, want %d", tt.in, got, tt.want)
			}
		}()
	}
}

// A check may accrue or redeem at most MaxCheckPoints on a card: head
// office refuses journal entries beyond it, so the receipt would print
// points that never count (a redemption spendable again). A rule whose
// points or percent could overflow the engine is refused as a program.
func TestPointsPerCheckBounded(t *testing.T) {
	rule := AccrualRule{ID: "u", Kind: AccrualPerUnit, Points: MustPoints("1000000000")}
	in := input([]Line{ln(1, "a", "1.00", "1")}, []Program{prog(withRules(rule))}, crd("A", KindBonus, StateActive))
	if _, err := Quote(in); err != nil {
		t.Fatalf("accrual of 10^9 points, the bound: %v", err)
	}
	in = input([]Line{ln(1, "a", "1.00", "2")}, []Program{prog(withRules(rule))}, crd("A", KindBonus, StateActive))
	if _, err := Quote(in); !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "card A: accrual 2000000000 or redemption 0 over 1000000000 points") {
		t.Errorf("accrual of 2·10^9 points: err = %v, want ErrOutOfRange naming the card", err)
	}
	in = input([]Line{ln(1, "a", "100000000.00", "20")}, []Program{prog()}, crd("A", KindBonus, StateActive, lot("L", "2000000000", 0)))
	redeem := MustPoints("1500000000")
	in.Redeem = &redeem
	if _, err := Quote(in); !errors.Is(err, ErrRedeemNotAllowed) || !strings.Contains(err.Error(), "allowed at most 1000000000 (limit check_points)") {
		t.Errorf("redemption of 1.5·10^9 points: err = %v, want refused by the check_points limit", err)
	}
	// The quote offers at most the bound, naming it.
	in.Redeem = nil
	if r, err := Quote(in); err != nil || r.Redemption == nil || r.Redemption.Max.String() != "1000000000" || r.Redemption.MaxLimit != LimitCheckPoints {
		t.Errorf("quote on 2·10^9 points: %+v, %v; want max 10^9 (%s)", r.Redemption, err, LimitCheckPoints)
	}
	for _, p := range []Program{
		prog(withRules(AccrualRule{ID: "u", Kind: AccrualPerUnit, Points: MustPoints("1000000001")})),
		prog(withRules(percentRule("p", "10001"))),
	} {
		if err := ValidateProgram(&p); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ValidateProgram(%+v): %v, want ErrOutOfRange", p.Accrual, err)
		}
	}
}
