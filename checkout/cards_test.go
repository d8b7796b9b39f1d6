package checkout

import (
	"errors"
	"slices"
	"testing"
)

// One customer card and at most one referral card per check. Program: 5 %
// for customers, a fixed 100 points per check for agents; a 10 % cumulative
// discount for discount and combined cards. Check: one line of 1000.00.
//
//	bonus alone                 → customer 5 % of 1000.00 = 50
//	combined alone              → discount 100.00, 5 % of 900.00 = 45
//	bonus + referral            → 50 and 100
//	discount + referral         → discount 100.00, agent 100
//	blocked bonus + bonus       → the blocked one is not counted: 0 and 50
//	referral alone              → 0, card.referral_without_customer
//	blocked bonus + referral    → 0 and 0 (no customer card in effect)
//	bonus + bonus               → refused, cards.too_many_customer
//	bonus + bonus + combined    → refused, all three named (the review case)
//	bonus + referral + referral → refused, cards.too_many_referral
func TestCardRoles(t *testing.T) {
	p := prog(withRules(percentRule("base", "5"), AccrualRule{ID: "agent", Kind: AccrualFixed, For: ForAgent, Points: MustPoints("100")}),
		func(p *Program) {
			p.Discount = &DiscountRules{ID: "d", Mode: DiscountCumulative, Levels: []TierLevel{{Percent: MustPercent("10")}}}
		})
	bonus := func(code string) Card { return crd(code, KindBonus, StateActive, lot("L"+code, "100", 0)) }
	blocked := func(code string) Card { c := crd(code, KindBonus, StateBlocked); c.BlockReason = "lost"; return c }
	agent := func(code string) Card { return crd(code, KindReferral, StateActive) }
	tests := []struct {
		name      string
		cards     []Card
		accrued   []string // per card, when accepted
		reasons   []string
		discount  string
		errCode   string // CardsError code when refused
		errCards  []string
		spendCard string
	}{
		{name: "bonus alone", cards: []Card{bonus("2900000000013")}, accrued: []string{"50"}, reasons: []string{""}, discount: "0.00", spendCard: "2900000000013"},
		{name: "combined alone", cards: []Card{crd("2700000000015", KindCombined, StateActive)}, accrued: []string{"45"}, reasons: []string{""}, discount: "100.00", spendCard: "2700000000015"},
		{name: "bonus and referral", cards: []Card{bonus("2900000000013"), agent("2600000000017")}, accrued: []string{"50", "100"}, reasons: []string{"", ""}, discount: "0.00", spendCard: "2900000000013"},
		{name: "discount and referral", cards: []Card{crd("2800000000011", KindDiscount, StateActive), agent("2600000000017")}, accrued: []string{"0", "100"}, reasons: []string{"", ""}, discount: "100.00"},
		{name: "blocked and active bonus", cards: []Card{blocked("2900000000032"), bonus("2900000000013")}, accrued: []string{"0", "50"}, reasons: []string{ReasonBlocked + ": lost", ""}, discount: "0.00", spendCard: "2900000000013"},
		{name: "referral alone", cards: []Card{agent("2600000000017")}, accrued: []string{"0"}, reasons: []string{ReasonAgentNoCustomer}, discount: "0.00"},
		{name: "referral beside a blocked card", cards: []Card{blocked("2900000000032"), agent("2600000000017")}, accrued: []string{"0", "0"}, reasons: []string{ReasonBlocked + ": lost", ReasonAgentNoCustomer}, discount: "0.00", spendCard: "2900000000032"},
		{name: "two bonus cards", cards: []Card{bonus("2900000000013"), bonus("2900000000044")}, errCode: CardsTooManyCustomer, errCards: []string{"2900000000013", "2900000000044"}},
		{name: "two bonus and a combined", cards: []Card{bonus("2900000000013"), bonus("2900000000044"), crd("2700000000015", KindCombined, StateActive)},
			errCode: CardsTooManyCustomer, errCards: []string{"2900000000013", "2900000000044", "2700000000015"}},
		{name: "bonus and discount", cards: []Card{bonus("2900000000013"), crd("2800000000011", KindDiscount, StateIssued)}, errCode: CardsTooManyCustomer, errCards: []string{"2900000000013", "2800000000011"}},
		{name: "two referral cards", cards: []Card{bonus("2900000000013"), agent("2600000000017"), agent("2600000000024")}, errCode: CardsTooManyReferral, errCards: []string{"2600000000017", "2600000000024"}},
		{name: "second referral blocked", cards: []Card{bonus("2900000000013"), agent("2600000000017"), {Code: "2600000000024", Kind: KindReferral, State: StateBlocked, ProgramID: "p"}},
			accrued: []string{"50", "100", "0"}, reasons: []string{"", "", ReasonBlocked}, discount: "0.00", spendCard: "2900000000013"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input([]Line{ln(1, "x", "1000.00", "1")}, []Program{p}, tt.cards...)
			r, err := Quote(in)
			if tt.errCode != "" {
				var ce *CardsError
				if !errors.As(err, &ce) || !errors.Is(err, ErrTooManyCards) || !errors.Is(err, ErrInvalidInput) {
					t.Fatalf("err = %v, want a CardsError", err)
				}
				if ce.Code != tt.errCode || !slices.Equal(ce.Cards, tt.errCards) {
					t.Errorf("CardsError = %s %v, want %s %v", ce.Code, ce.Cards, tt.errCode, tt.errCards)
				}
				return
			}
			if err != nil {
				t.Fatalf("Quote: %v", err)
			}
			checkInvariants(t, in, r)
			for i, c := range r.Cards {
				eqPoints(t, c.Code+" accrued", c.Accrued, tt.accrued[i])
				if c.Reason != tt.reasons[i] {
					t.Errorf("%s reason = %q, want %q", c.Code, c.Reason, tt.reasons[i])
				}
			}
			eqMoney(t, "discount", r.Discount, tt.discount)
			if got := ""; r.Redemption != nil {
				got = r.Redemption.Card
				if got != tt.spendCard {
					t.Errorf("spending card = %s, want %s", got, tt.spendCard)
				}
			} else if tt.spendCard != "" {
				t.Errorf("no redemption, want card %s", tt.spendCard)
			}
			// A referral card that earns nothing says why in the explanation.
			for _, c := range r.Cards {
				if c.Reason != ReasonAgentNoCustomer {
					continue
				}
				found := false
				for _, e := range r.Explain {
					found = found || (e.Code == CodeCardDenied && e.Card == c.Code)
				}
				if !found {
					t.Errorf("no %s explanation for %s", CodeCardDenied, c.Code)
				}
			}
		})
	}
}

// The refusal reads well on the till's screen.
func TestCardsErrorMessage(t *testing.T) {
	in := input([]Line{ln(1, "x", "10.00", "1")}, []Program{prog()},
		crd("2900000000013", KindBonus, StateActive), crd("2900000000044", KindBonus, StateActive))
	_, err := Quote(in)
	want := "quote check c1: cards.too_many_customer: a check takes at most one customer card (bonus, discount or combined), presented 2: 2900000000013, 2900000000044 (remove all but one)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant   %s", err, want)
	}
}
