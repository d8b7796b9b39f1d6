package checkout

import (
	"encoding/json"
	"errors"
	"testing"
)

// All-or-nothing has two modes. "balance" (the legacy all_or_nothing flag):
// the whole spendable balance or nothing. "check": points pay the whole
// check (sum after discounts) or nothing. Base check 600.00 + 400.00 =
// 1000.00, 1 point = 1.00 rouble, whole points.
func TestAllOrNothingModes(t *testing.T) {
	base := []Line{ln(1, "a", "600.00", "1"), ln(2, "b", "400.00", "1")}
	odd := []Line{ln(1, "a", "600.50", "1"), ln(2, "b", "400.00", "1")}
	withTobacco := append([]Line{ln(3, "cigs", "200.00", "1", tobacco)}, base...)
	check := AllOrNothingCheck
	tests := []struct {
		name      string
		lines     []Line
		rules     RedemptionRules
		mod       func(*Program)
		kind      CardKind
		balance   string
		wantMax   string
		wantLimit string
	}{
		{"legacy flag, balance fits", base, RedemptionRules{AllOrNothing: true}, nil, KindBonus, "700", "700", LimitBalance},
		{"legacy flag, balance over the check", base, RedemptionRules{AllOrNothing: true}, nil, KindBonus, "1200", "0", LimitAllOrNothing},
		{"balance mode, fits", base, RedemptionRules{AllOrNothingMode: AllOrNothingBalance}, nil, KindBonus, "700", "700", LimitBalance},
		{"balance mode, over", base, RedemptionRules{AllOrNothingMode: AllOrNothingBalance}, nil, KindBonus, "1200", "0", LimitAllOrNothing},
		// 1200 points cover the 1000.00 check: exactly 1000 are spent.
		{"check mode, covered", base, RedemptionRules{AllOrNothingMode: check}, nil, KindBonus, "1200", "1000", LimitWholeCheck},
		{"check mode, balance exactly the check", base, RedemptionRules{AllOrNothingMode: check}, nil, KindBonus, "1000", "1000", LimitWholeCheck},
		{"check mode, balance short", base, RedemptionRules{AllOrNothingMode: check}, nil, KindBonus, "700", "0", LimitWholeCheck},
		{"check mode wins over the flag", base, RedemptionRules{AllOrNothing: true, AllOrNothingMode: check}, nil, KindBonus, "1200", "1000", LimitWholeCheck},
		// 50 % of the check may be paid with points, so never all of it.
		{"check mode, check percent", base, RedemptionRules{AllOrNothingMode: check, MaxCheckPercent: pct("50")}, nil, KindBonus, "5000", "0", LimitWholeCheck},
		// Tobacco cannot be paid with points (15-FZ): never the whole check.
		{"check mode, tobacco on the check", withTobacco, RedemptionRules{AllOrNothingMode: check}, nil, KindBonus, "5000", "0", LimitWholeCheck},
		// 1000.50 needs 1001 whole points, but 0.50 of a line cannot take
		// a whole point (worth 1.00): the lines allow 1000.
		{"check mode, kopecks with whole points", odd, RedemptionRules{AllOrNothingMode: check}, nil, KindBonus, "5000", "0", LimitWholeCheck},
		// Points carried to hundredths pay 1000.50 exactly.
		{"check mode, hundredths of a point", odd, RedemptionRules{AllOrNothingMode: check}, func(p *Program) { p.PointRounding = Rounding{Scale: 2} }, KindBonus, "5000", "1000.5", LimitWholeCheck},
		// At 0.10 rouble a point, 1000.00 is 10 000 points.
		{"check mode, ten kopeck points", base, RedemptionRules{AllOrNothingMode: check}, func(p *Program) { p.PointValue = MustMoney("0.10") }, KindBonus, "12000", "10000", LimitWholeCheck},
		{"check mode, under the minimum", base, RedemptionRules{AllOrNothingMode: check, MinRedeem: MustPoints("2000")}, nil, KindBonus, "5000", "0", LimitMinRedeem},
		// A combined card's 10 % discount: the check is 900.00.
		{"check mode after a discount", base, RedemptionRules{AllOrNothingMode: check}, func(p *Program) {
			p.Discount = &DiscountRules{ID: "d", Mode: DiscountCumulative, Levels: []TierLevel{{Percent: MustPercent("10")}}}
		}, KindCombined, "5000", "900", LimitWholeCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(func(p *Program) { p.Redemption = tt.rules })
			if tt.mod != nil {
				tt.mod(&p)
			}
			in := input(tt.lines, []Program{p}, crd("A", tt.kind, StateActive, lot("L", tt.balance, 0)))
			r := mustQuote(t, in)
			eqPoints(t, "max", r.Redemption.Max, tt.wantMax)
			if r.Redemption.MaxLimit != tt.wantLimit {
				t.Errorf("limit = %s, want %s", r.Redemption.MaxLimit, tt.wantLimit)
			}
			mx := r.Redemption.Max
			if !mx.IsPositive() {
				return
			}
			// The maximum is the only amount accepted.
			in.Redeem = &mx
			got := mustQuote(t, in)
			if (tt.rules.AllOrNothingMode == check) != got.Payable.IsZero() {
				t.Errorf("redeem %s: payable %s", mx, got.Payable)
			}
			// Less is refused by the mode, more by the limit that bound
			// the maximum.
			modeLimit := LimitAllOrNothing
			if tt.rules.AllOrNothingMode == check {
				modeLimit = LimitWholeCheck
			}
			for _, c := range []struct {
				req   Points
				limit string
			}{{mx.Sub(IntPoints(1)), modeLimit}, {mx.Add(IntPoints(1)), tt.wantLimit}} {
				in.Redeem = &c.req
				_, err := Quote(in)
				var re *RedeemError
				if !errors.As(err, &re) || re.Limit != c.limit {
					t.Errorf("redeem %s of %s: err = %v, want limit %s", c.req, mx, err, c.limit)
				}
			}
		})
	}
}

func TestAllOrNothingJSON(t *testing.T) {
	for _, tt := range []struct {
		json string
		want AllOrNothingMode
	}{
		{`{}`, ""},
		{`{"all_or_nothing": true}`, AllOrNothingBalance},
		{`{"all_or_nothing_mode": "balance"}`, AllOrNothingBalance},
		{`{"all_or_nothing_mode": "check"}`, AllOrNothingCheck},
		{`{"all_or_nothing": true, "all_or_nothing_mode": "check"}`, AllOrNothingCheck},
	} {
		var r RedemptionRules
		if err := json.Unmarshal([]byte(tt.json), &r); err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		if got := r.allOrNothing(); got != tt.want {
			t.Errorf("%s: mode %q, want %q", tt.json, got, tt.want)
		}
		out, _ := json.Marshal(r)
		var back RedemptionRules
		if err := json.Unmarshal(out, &back); err != nil || back.allOrNothing() != tt.want {
			t.Errorf("%s: round trip %s gives %q", tt.json, out, back.allOrNothing())
		}
	}
	in := input([]Line{ln(1, "a", "10.00", "1")}, []Program{prog(func(p *Program) { p.Redemption.AllOrNothingMode = "everything" })}, crd("A", KindBonus, StateActive))
	if _, err := Quote(in); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown mode: err = %v, want ErrInvalidInput", err)
	}
}
