package checkout

import (
	"errors"
	"testing"
)

// TestRedeemCapsBindLikeProgramLimits: a cap from outside the program (the
// till's offline cap) lowers the maximum and names itself; a request over
// it is refused naming it; it goes through the program's minimum and
// all-or-nothing rules like the program's own limits, and a cap of 0
// allows nothing. A card without caps keeps the program's maximum.
func TestRedeemCapsBindLikeProgramLimits(t *testing.T) {
	lines := []Line{ln(1, "a", "500.00", "1")}
	card := func(caps ...LimitValue) Card {
		c := crd("c", KindBonus, StateActive, lot("l1", "300", 0))
		c.RedeemCaps = caps
		return c
	}
	quote := func(p Program, c Card, redeem *Points) (Result, error) {
		t.Helper()
		in := input(lines, []Program{p}, c)
		in.Redeem = redeem
		return Quote(in)
	}
	cases := []struct {
		name    string
		p       Program
		caps    []LimitValue
		max     string
		maxCode string
	}{
		{"no caps", prog(), nil, "300", LimitBalance},
		{"card cap", prog(), []LimitValue{{Code: "offline_card_cap", Points: MustPoints("150")}}, "150", "offline_card_cap"},
		{"fraction cut to the program's scale", prog(), []LimitValue{{Code: "offline_till_cap", Points: MustPoints("54.7")}}, "54", "offline_till_cap"},
		{"two caps: the smaller", prog(), []LimitValue{{Code: "offline_card_cap", Points: MustPoints("150")}, {Code: "offline_till_cap", Points: MustPoints("40")}}, "40", "offline_till_cap"},
		{"cap 0", prog(), []LimitValue{{Code: "offline_too_long", Points: MustPoints("0")}}, "0", "offline_too_long"},
		{"cap above the balance", prog(), []LimitValue{{Code: "offline_card_cap", Points: MustPoints("1000")}}, "300", LimitBalance},
		{"cap under the minimum", prog(func(p *Program) { p.Redemption.MinRedeem = MustPoints("50") }),
			[]LimitValue{{Code: "offline_card_cap", Points: MustPoints("30")}}, "0", LimitMinRedeem},
		{"all or nothing: the whole balance no longer fits", prog(func(p *Program) { p.Redemption.AllOrNothing = true }),
			[]LimitValue{{Code: "offline_card_cap", Points: MustPoints("150")}}, "0", LimitAllOrNothing},
	}
	for _, tc := range cases {
		res, err := quote(tc.p, card(tc.caps...), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := res.Redemption
		if r == nil || r.Max.String() != tc.max || r.MaxLimit != tc.maxCode {
			t.Fatalf("%s: redemption %+v, want max %s (%s)", tc.name, r, tc.max, tc.maxCode)
		}
		for _, c := range tc.caps {
			found := false
			for _, l := range r.Limits {
				found = found || l.Code == c.Code
			}
			if !found {
				t.Errorf("%s: limit %s not listed in %+v", tc.name, c.Code, r.Limits)
			}
		}
	}
	capped := card(LimitValue{Code: "offline_card_cap", Points: MustPoints("150")})
	if res, err := quote(prog(), capped, pts("150")); err != nil || res.Redemption.Points.String() != "150" {
		t.Fatalf("redeem 150 under a cap of 150: %v %v", res.Redemption, err)
	}
	_, err := quote(prog(), capped, pts("151"))
	var re *RedeemError
	if !errors.As(err, &re) || re.Limit != "offline_card_cap" || re.Max.String() != "150" {
		t.Fatalf("redeem 151 under a cap of 150: %v, want a RedeemError naming offline_card_cap", err)
	}
}
