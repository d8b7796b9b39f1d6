package checkout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Item 1: the point value converts points to roubles when spent; accrual
// percent gives points, whatever a point is worth (1 % of 100 000 roubles is
// 1000 points; at 0.10 rouble a point they pay 100 roubles).
func TestPointValue(t *testing.T) {
	tests := []struct {
		name, value, price string
		redeem             string
		wantAccrued        string
		wantMoney          string
	}{
		{"rouble per point", "1.00", "100000.00", "150", "1000", "150.00"},
		{"ten kopecks per point", "0.10", "100000.00", "1000", "1000", "100.00"},
		{"ten kopecks, odd points", "0.10", "100000.00", "15", "1000", "1.50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(withRules(percentRule("base", "1")), func(p *Program) {
				p.PointValue = MustMoney(tt.value)
				p.EarnOnRedeemedPart = true
			})
			in := input([]Line{ln(1, "tv", tt.price, "1")}, []Program{p}, crd("A", KindBonus, StateActive, lot("L1", "5000", 0)))
			in.Redeem = pts(tt.redeem)
			r := mustQuote(t, in)
			eqPoints(t, "accrued", r.Cards[0].Accrued, tt.wantAccrued)
			eqMoney(t, "redeemed money", r.Redeemed, tt.wantMoney)
			eqMoney(t, "payable", r.Payable, MustMoney(tt.price).Sub(MustMoney(tt.wantMoney)).String())
		})
	}
}

// Item 2: card kinds and states.
func TestCardKindsAndStates(t *testing.T) {
	tests := []struct {
		kind                    CardKind
		state                   CardState
		earn, spend, discount   bool
		reason                  string
		wantAccrued, wantDiscnt string
	}{
		{KindBonus, StateActive, true, true, false, "", "50", "0.00"},
		{KindBonus, StateIssued, true, false, false, ReasonIssued, "50", "0.00"},
		{KindBonus, StateBlocked, false, false, false, "card.blocked: lost", "0", "0.00"},
		{KindDiscount, StateActive, false, false, true, "", "0", "100.00"},
		{KindDiscount, StateIssued, false, false, true, "", "0", "100.00"},
		{KindDiscount, StateBlocked, false, false, false, "card.blocked: lost", "0", "0.00"},
		{KindCombined, StateActive, true, true, true, "", "45", "100.00"},
		{KindCombined, StateIssued, true, false, true, ReasonIssued, "45", "100.00"},
		// Alone, without a customer card, an agent card earns nothing.
		{KindReferral, StateActive, false, false, false, ReasonAgentNoCustomer, "0", "0.00"},
		{KindReferral, StateBlocked, false, false, false, "card.blocked: lost", "0", "0.00"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+string(tt.state), func(t *testing.T) {
			agent := AccrualRule{ID: "agent", Kind: AccrualPercent, For: ForAgent, Percent: MustPercent("1")}
			p := prog(withRules(percentRule("base", "5"), agent), func(p *Program) {
				p.Discount = &DiscountRules{ID: "d", Mode: DiscountCumulative, Levels: []TierLevel{{From: MustMoney("0"), Percent: MustPercent("10")}}}
			})
			c := crd("A", tt.kind, tt.state, lot("L1", "100", 0))
			c.BlockReason = "lost"
			r := mustQuote(t, input([]Line{ln(1, "x", "1000.00", "1")}, []Program{p}, c))
			cr := r.Cards[0]
			if cr.CanEarn != tt.earn || cr.CanSpend != tt.spend || cr.CanDiscount != tt.discount {
				t.Errorf("earn/spend/discount = %v/%v/%v, want %v/%v/%v", cr.CanEarn, cr.CanSpend, cr.CanDiscount, tt.earn, tt.spend, tt.discount)
			}
			if cr.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", cr.Reason, tt.reason)
			}
			eqPoints(t, "accrued", cr.Accrued, tt.wantAccrued)
			eqMoney(t, "discount", r.Discount, tt.wantDiscnt)
			// Spending is refused with a clear error unless the card can spend.
			in := input([]Line{ln(1, "x", "1000.00", "1")}, []Program{p}, c)
			in.Redeem = pts("10")
			_, err := Quote(in)
			if tt.spend && err != nil {
				t.Errorf("redeem on spending card: %v", err)
			}
			if !tt.spend && !errors.Is(err, ErrCannotRedeem) {
				t.Errorf("redeem on %s/%s: err = %v, want ErrCannotRedeem", tt.kind, tt.state, err)
			}
		})
	}
}

// Item 3: accrual kinds and conditions.
func TestAccrualRules(t *testing.T) {
	lines := []Line{
		ln(1, "milk", "100.00", "2", groups("dairy")),     // 200.00
		ln(2, "bread", "50.00", "1", groups("bakery")),    // 50.00
		ln(3, "vodka", "750.00", "1", groups("alcohol")),  // 750.00
		ln(4, "coffee", "333.33", "3", groups("grocery")), // 999.99
	}
	tests := []struct {
		name  string
		rules []AccrualRule
		want  string
	}{
		{"percent of all", []AccrualRule{percentRule("r", "5")}, "99"}, // 5 % of 1999.99 = 99.9995 → 99 (down)
		{"fixed per check", []AccrualRule{{ID: "r", Kind: AccrualFixed, Points: MustPoints("100")}}, "100"},
		{"per unit of a product", []AccrualRule{{ID: "r", Kind: AccrualPerUnit, Points: MustPoints("10"), IncludeProducts: []string{"coffee"}}}, "30"},
		{"min check sum met", []AccrualRule{{ID: "r", Kind: AccrualFixed, Points: MustPoints("100"), MinCheckSum: MustMoney("1999.99")}}, "100"},
		{"min check sum not met", []AccrualRule{{ID: "r", Kind: AccrualFixed, Points: MustPoints("100"), MinCheckSum: MustMoney("2000.00")}}, "0"},
		{"exclude group", []AccrualRule{func() AccrualRule { r := percentRule("r", "10"); r.ExcludeGroups = []string{"alcohol"}; return r }()}, "124"}, // 10 % of 1249.99
		{"exclude product", []AccrualRule{func() AccrualRule { r := percentRule("r", "10"); r.ExcludeProducts = []string{"coffee"}; return r }()}, "100"},
		{"include group only", []AccrualRule{func() AccrualRule { r := percentRule("r", "10"); r.IncludeGroups = []string{"dairy"}; return r }()}, "20"},
		{"include product or group", []AccrualRule{func() AccrualRule {
			r := percentRule("r", "10")
			r.IncludeGroups, r.IncludeProducts = []string{"dairy"}, []string{"bread"}
			return r
		}()}, "25"},
		{"store listed", []AccrualRule{func() AccrualRule { r := percentRule("r", "1"); r.Stores = []string{"s1"}; return r }()}, "19"},
		{"other store", []AccrualRule{func() AccrualRule { r := percentRule("r", "1"); r.Stores = []string{"s2"}; return r }()}, "0"},
		{"rules add up", []AccrualRule{percentRule("a", "1"), {ID: "b", Kind: AccrualFixed, Points: MustPoints("5")}}, "24"}, // 19.9999 + 5 → 24
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustQuote(t, input(lines, []Program{prog(withRules(tt.rules...))}, crd("A", KindBonus, StateActive)))
			eqPoints(t, "accrued", r.Cards[0].Accrued, tt.want)
		})
	}
}

// Point rounding is per program: scale and mode.
func TestPointRounding(t *testing.T) {
	tests := []struct {
		rounding Rounding
		want     string
	}{
		{Rounding{}, "12"}, // 12.3456 down
		{Rounding{Scale: 0, Mode: RoundHalfUp}, "12"}, // 12.3456 half up
		{Rounding{Scale: 0, Mode: RoundUp}, "13"},
		{Rounding{Scale: 2, Mode: RoundDown}, "12.34"},
		{Rounding{Scale: 2, Mode: RoundHalfUp}, "12.35"},
		{Rounding{Scale: 1, Mode: RoundHalfEven}, "12.3"},
	}
	for _, tt := range tests {
		t.Run(string(tt.rounding.Mode)+"/"+string(rune('0'+tt.rounding.Scale)), func(t *testing.T) {
			p := prog(withRules(percentRule("r", "1")), func(p *Program) { p.PointRounding = tt.rounding })
			r := mustQuote(t, input([]Line{ln(1, "x", "1234.56", "1")}, []Program{p}, crd("A", KindBonus, StateActive)))
			eqPoints(t, "accrued", r.Cards[0].Accrued, tt.want)
		})
	}
}

// Item 4: tiers by the check, the previous month or all-time purchases.
func TestTiers(t *testing.T) {
	levels := []TierLevel{
		{From: MustMoney("0"), Percent: MustPercent("1")},
		{From: MustMoney("1000"), Percent: MustPercent("3")},
		{From: MustMoney("5000"), Percent: MustPercent("5")},
	}
	tests := []struct {
		name          string
		basis         TierBasis
		prev, allTime string
		price         string
		want          string
	}{
		{"check below first step", BasisCheck, "0", "0", "999.99", "9"},     // 1 %
		{"check at step", BasisCheck, "0", "0", "1000.00", "30"},            // 3 %
		{"check top", BasisCheck, "0", "0", "6000.00", "300"},               // 5 %
		{"previous month", BasisPrevMonth, "6000.00", "0", "1500.00", "75"}, // 5 % of 1500
		{"previous month low", BasisPrevMonth, "999.00", "90000", "1500.00", "15"},
		{"all time incl. check", BasisAllTime, "0", "3600.00", "1500.00", "75"}, // 3600+1500 = 5100 → 5 %
		{"all time below", BasisAllTime, "0", "3400.00", "1500.00", "45"},       // 4900 → 3 %
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := AccrualRule{ID: "tier", Kind: AccrualPercent, Tiers: &TierTable{Basis: tt.basis, Levels: levels}}
			c := crd("A", KindBonus, StateActive)
			c.PurchasesPrevMonth, c.PurchasesAllTime = MustMoney(tt.prev), MustMoney(tt.allTime)
			r := mustQuote(t, input([]Line{ln(1, "x", tt.price, "1")}, []Program{prog(withRules(rule))}, c))
			eqPoints(t, "accrued", r.Cards[0].Accrued, tt.want)
		})
	}
}

// Item 5: promotions. The worked example of the domain article: 3 % of
// 1000 = 30; a period promotion ×2 gives 60; a product promotion ×4 on top
// gives 240.
func TestPromotions(t *testing.T) {
	period := Promotion{ID: "autumn", Scope: ScopeAll, From: MustLocalTime("2026-11-01"), To: MustLocalTime("2026-12-01"), Multiplier: MustFactor("2")}
	product := Promotion{ID: "test", Scope: ScopeProducts, From: MustLocalTime("2026-11-10"), To: MustLocalTime("2026-12-10"),
		ProductMultipliers: map[string]Factor{"test": MustFactor("4"), "other": MustFactor("5")}}
	product3 := Promotion{ID: "three", Scope: ScopeProducts, Products: []string{"test"}, Multiplier: MustFactor("3")}
	group := Promotion{ID: "grp", Scope: ScopeGroups, Groups: []string{"summer"}, Multiplier: MustFactor("6")}
	period15 := Promotion{ID: "small", Scope: ScopeAll, Multiplier: MustFactor("1.5")}
	expired := Promotion{ID: "old", Scope: ScopeAll, From: MustLocalTime("2026-10-01"), To: MustLocalTime("2026-11-01"), Multiplier: MustFactor("10")}
	otherStore := Promotion{ID: "elsewhere", Scope: ScopeAll, Multiplier: MustFactor("10"), Stores: []string{"s9"}}

	tests := []struct {
		name   string
		promos []Promotion
		groups []string
		want   string
	}{
		{"none", nil, nil, "30"},
		{"period only", []Promotion{period}, nil, "60"},
		{"product only", []Promotion{product}, nil, "120"},
		{"period × product", []Promotion{period, product}, nil, "240"},
		{"largest product multiplier wins", []Promotion{product3, product}, nil, "120"},
		{"largest period multiplier wins", []Promotion{period15, period}, nil, "60"},
		{"group promotion competes with product", []Promotion{product, group}, []string{"summer"}, "180"},
		{"out of window", []Promotion{expired}, nil, "30"},
		{"other store", []Promotion{otherStore}, nil, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(withRules(percentRule("base", "3")), func(p *Program) { p.Promotions = tt.promos })
			r := mustQuote(t, input([]Line{ln(1, "test", "1000.00", "1", groups(tt.groups...))}, []Program{p}, crd("A", KindBonus, StateActive)))
			eqPoints(t, "accrued", r.Cards[0].Accrued, tt.want)
		})
	}
}

// Promotion windows are store-local: a promotion starting at local midnight
// is on at 01:30 Moscow time although it is still the previous day in UTC.
func TestPromotionWindowLocalTime(t *testing.T) {
	promo := Promotion{ID: "day", Scope: ScopeAll, From: MustLocalTime("2026-11-23"), To: MustLocalTime("2026-11-24"), Multiplier: MustFactor("2")}
	p := prog(withRules(percentRule("base", "10")), func(p *Program) { p.Promotions = []Promotion{promo} })
	at := time.Date(2026, 11, 22, 22, 30, 0, 0, time.UTC) // 01:30 on the 23rd in Moscow
	for _, tt := range []struct {
		loc  *time.Location
		want string
	}{{msk, "20"}, {time.UTC, "10"}} {
		in := input([]Line{ln(1, "x", "100.00", "1")}, []Program{p}, crd("A", KindBonus, StateActive))
		in.Now, in.Location = at, tt.loc
		r := mustQuote(t, in)
		eqPoints(t, "accrued in "+tt.loc.String(), r.Cards[0].Accrued, tt.want)
	}
	// The end is exclusive: at local midnight of the 24th it is over.
	in := input([]Line{ln(1, "x", "100.00", "1")}, []Program{p}, crd("A", KindBonus, StateActive))
	in.Now = time.Date(2026, 11, 24, 0, 0, 0, 0, msk)
	eqPoints(t, "accrued at end", mustQuote(t, in).Cards[0].Accrued, "10")
}

// Item 6: a referral (agent) card beside the customer's card accrues
// independently; an agent's fixed amount ignores the check sum; agents get
// no promotions and never spend.
func TestReferralCards(t *testing.T) {
	agentFixed := AccrualRule{ID: "agent-fixed", Kind: AccrualFixed, For: ForAgent, Points: MustPoints("100")}
	agentPct := AccrualRule{ID: "agent-pct", Kind: AccrualPercent, For: ForAgent, Percent: MustPercent("1")}
	promo := Promotion{ID: "x2", Scope: ScopeAll, Multiplier: MustFactor("2")}
	tests := []struct {
		name               string
		rules              []AccrualRule
		price              string
		wantCust, wantAgnt string
	}{
		{"fixed regardless of sum", []AccrualRule{percentRule("base", "5"), agentFixed}, "10.00", "1", "100"}, // 5 % of 10 ×2,
		{"fixed on a big check", []AccrualRule{percentRule("base", "5"), agentFixed}, "1000.00", "100", "100"},
		{"agent percent, no promotion", []AccrualRule{percentRule("base", "5"), agentPct}, "1000.00", "100", "10"},
		{"no agent rules", []AccrualRule{percentRule("base", "5")}, "1000.00", "100", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(withRules(tt.rules...), func(p *Program) { p.Promotions = []Promotion{promo} })
			in := input([]Line{ln(1, "x", tt.price, "1")}, []Program{p},
				crd("CUST", KindBonus, StateActive), crd("AGENT", KindReferral, StateActive, lot("AL", "500", 0)))
			r := mustQuote(t, in)
			eqPoints(t, "customer", cardRes(t, r, "CUST").Accrued, tt.wantCust)
			eqPoints(t, "agent", cardRes(t, r, "AGENT").Accrued, tt.wantAgnt)
			if r.Redemption == nil || r.Redemption.Card != "CUST" {
				t.Errorf("redemption card = %+v, want CUST", r.Redemption)
			}
		})
	}
	// With a blocked card and an active one, the active one spends.
	in0 := input([]Line{ln(1, "x", "100.00", "1")}, []Program{prog()}, crd("OLD", KindBonus, StateBlocked, lot("O", "50", 0)), crd("NEW", KindBonus, StateActive, lot("N", "50", 0)))
	in0.Redeem = pts("10")
	if r := mustQuote(t, in0); r.Redemption.Card != "NEW" {
		t.Errorf("spending card = %s, want NEW", r.Redemption.Card)
	}
	// The agent card cannot be made to spend.
	in := input([]Line{ln(1, "x", "100.00", "1")}, []Program{prog()}, crd("CUST", KindBonus, StateActive), crd("AGENT", KindReferral, StateActive, lot("AL", "500", 0)))
	in.Redeem, in.RedeemCard = pts("10"), "AGENT"
	if _, err := Quote(in); !errors.Is(err, ErrCannotRedeem) {
		t.Errorf("redeem from agent card: err = %v, want ErrCannotRedeem", err)
	}
}

// Item 7: discount cards, by cumulative purchases or fixed per category.
func TestDiscountCards(t *testing.T) {
	cumulative := &DiscountRules{ID: "cum", Mode: DiscountCumulative, Levels: []TierLevel{
		{From: MustMoney("0"), Percent: MustPercent("1")},
		{From: MustMoney("10000"), Percent: MustPercent("3")},
		{From: MustMoney("50000"), Percent: MustPercent("5")},
	}}
	category := &DiscountRules{ID: "cat", Mode: DiscountCategory, Categories: []CategoryDiscount{
		{Group: "dairy", Percent: MustPercent("10")},
		{Group: "milk", Percent: MustPercent("15")},
		{Group: "bakery", Percent: MustPercent("5")},
	}}
	lines := []Line{
		ln(1, "milk", "99.99", "1", groups("dairy", "milk")),
		ln(2, "bread", "45.50", "1", groups("bakery")),
		ln(3, "cigs", "200.00", "1", groups("tobacco"), tobacco),
		ln(4, "soap", "60.00", "1", groups("household")),
	}
	tests := []struct {
		name      string
		rules     *DiscountRules
		purchases string
		want      []string // per line
	}{
		// 1 %: 1.00 (0.9999 half up), 0.46 (0.455), 0, 0.60
		{"cumulative low", cumulative, "500.00", []string{"1.00", "0.46", "0.00", "0.60"}},
		// 3 %: 3.00 (2.9997), 1.37 (1.365), 0, 1.80
		{"cumulative middle", cumulative, "12000.00", []string{"3.00", "1.37", "0.00", "1.80"}},
		{"cumulative top", cumulative, "50000.00", []string{"5.00", "2.28", "0.00", "3.00"}},
		// milk in two categories: the larger 15 % wins: 14.9985 → 15.00.
		{"category", category, "0", []string{"15.00", "2.28", "0.00", "0.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(func(p *Program) { p.Discount = tt.rules })
			c := crd("D", KindDiscount, StateActive)
			c.PurchasesAllTime = MustMoney(tt.purchases)
			r := mustQuote(t, input(lines, []Program{p}, c))
			for i, w := range tt.want {
				eqMoney(t, "discount line", r.Lines[i].Discount, w)
			}
		})
	}
}

// Item 8: activation delay, expiry, soonest-expiring lots spent first.
func TestActivationAndExpiry(t *testing.T) {
	p := prog(withRules(percentRule("base", "10")), func(p *Program) {
		p.ActivationDays, p.ExpiryDays = 14, 90
		p.EarnOnRedeemedPart = true
	})
	pending := lot("PENDING", "500", 200)
	pending.ActiveFrom = now.Add(days(3))
	gone := lot("GONE", "700", 0)
	e := now.Add(-time.Hour)
	gone.ExpiresAt = &e
	c := crd("A", KindBonus, StateActive,
		lot("LATE", "100", 60), lot("NEVER", "100", 0), lot("SOON", "30", 5), pending, gone)
	in := input([]Line{ln(1, "x", "1000.00", "1")}, []Program{p}, c)
	in.Redeem = pts("150")
	r := mustQuote(t, in)
	cr := r.Cards[0]
	eqPoints(t, "spendable before", cr.SpendableBefore, "230")
	eqPoints(t, "balance before", cr.BalanceBefore, "730")
	want := []LotUse{{"SOON", MustPoints("30")}, {"LATE", MustPoints("100")}, {"NEVER", MustPoints("20")}}
	if got := r.Redemption.LotsConsumed; len(got) != len(want) {
		t.Fatalf("lots consumed = %v, want %v", got, want)
	}
	for i, w := range want {
		if g := r.Redemption.LotsConsumed[i]; g.LotID != w.LotID || !g.Points.Equal(w.Points) {
			t.Errorf("lot %d = %v, want %v", i, g, w)
		}
	}
	if len(cr.NewLots) != 1 {
		t.Fatalf("new lots = %v", cr.NewLots)
	}
	nl := cr.NewLots[0]
	eqPoints(t, "new lot", nl.Points, "100")
	if wantFrom := time.Date(2026, 12, 7, 12, 0, 0, 0, msk); !nl.ActiveFrom.Equal(wantFrom) {
		t.Errorf("active from %v, want %v", nl.ActiveFrom, wantFrom)
	}
	if wantExp := time.Date(2027, 3, 7, 12, 0, 0, 0, msk); nl.ExpiresAt == nil || !nl.ExpiresAt.Equal(wantExp) {
		t.Errorf("expires %v, want %v", nl.ExpiresAt, wantExp)
	}
	eqPoints(t, "balance after", cr.BalanceAfter, "680")    // 730 − 150 + 100
	eqPoints(t, "spendable after", cr.SpendableAfter, "80") // new lot not yet active

	// Without a delay the new points are spendable at once and never expire.
	p.ActivationDays, p.ExpiryDays = 0, 0
	in = input([]Line{ln(1, "x", "1000.00", "1")}, []Program{p}, crd("A", KindBonus, StateActive))
	cr = mustQuote(t, in).Cards[0]
	if !cr.NewLots[0].ActiveFrom.Equal(now) || cr.NewLots[0].ExpiresAt != nil {
		t.Errorf("immediate lot = %+v", cr.NewLots[0])
	}
	eqPoints(t, "spendable after", cr.SpendableAfter, "100")
}

// Item 9: redemption limits combine, the smallest wins and is named.
func TestRedemptionLimits(t *testing.T) {
	base := []Line{
		ln(1, "a", "600.00", "1", segment("regular"), cost("400.00")),
		ln(2, "b", "400.00", "1", segment("promo"), cost("100.00")),
	}
	markup := []Line{ln(1, "coat", "1450.00", "1", cost("1000.00"))}
	tests := []struct {
		name      string
		lines     []Line
		balance   string
		rules     RedemptionRules
		monthly   string
		wantMax   string
		wantLimit string
	}{
		{"balance", base, "300", RedemptionRules{}, "0", "300", LimitBalance},
		{"whole check", base, "5000", RedemptionRules{}, "0", "1000", LimitLines},
		{"check percent", base, "5000", RedemptionRules{MaxCheckPercent: pct("30")}, "0", "300", LimitCheckPercent},
		{"segments", base, "5000", RedemptionRules{Segments: []string{"regular"}}, "0", "600", LimitLines},
		{"markup", base, "5000", RedemptionRules{MinMarkupPercent: pct("10")}, "0", "450", LimitLines}, // 600−440 + 400−110
		// The domain article's example: cost 1000, markup 10 %, price 1450:
		// 350 may be paid with points; a 10 % check limit gives 145.
		{"markup article 50%", markup, "5000", RedemptionRules{MinMarkupPercent: pct("10"), MaxCheckPercent: pct("50")}, "0", "350", LimitLines},
		{"markup article 10%", markup, "5000", RedemptionRules{MinMarkupPercent: pct("10"), MaxCheckPercent: pct("10")}, "0", "145", LimitCheckPercent},
		{"monthly cap", base, "5000", RedemptionRules{MonthlyCap: pts("500")}, "420", "80", LimitMonthlyCap},
		{"monthly cap used up", base, "5000", RedemptionRules{MonthlyCap: pts("500")}, "600", "0", LimitMonthlyCap},
		{"minimum redemption", base, "40", RedemptionRules{MinRedeem: MustPoints("50")}, "0", "0", LimitMinRedeem},
		{"minimum met", base, "60", RedemptionRules{MinRedeem: MustPoints("50")}, "0", "60", LimitBalance},
		{"all or nothing fits", base, "700", RedemptionRules{AllOrNothing: true}, "0", "700", LimitBalance},
		{"all or nothing too much", base, "1200", RedemptionRules{AllOrNothing: true}, "0", "0", LimitAllOrNothing},
		{"all combined", base, "5000", RedemptionRules{MaxCheckPercent: pct("50"), Segments: []string{"regular"}, MinMarkupPercent: pct("20"), MonthlyCap: pts("1000")}, "0", "120", LimitLines}, // 600 − 480
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(func(p *Program) { p.Redemption = tt.rules })
			c := crd("A", KindBonus, StateActive, lot("L", tt.balance, 0))
			c.RedeemedThisMonth = MustPoints(tt.monthly)
			in := input(tt.lines, []Program{p}, c)
			r := mustQuote(t, in)
			eqPoints(t, "max", r.Redemption.Max, tt.wantMax)
			if r.Redemption.MaxLimit != tt.wantLimit {
				t.Errorf("limit = %s, want %s (limits %v)", r.Redemption.MaxLimit, tt.wantLimit, r.Redemption.Limits)
			}
			// The cashier may ask for the maximum but not a point more.
			if mx := r.Redemption.Max; mx.IsPositive() {
				in.Redeem = &mx
				got := mustQuote(t, in)
				eqPoints(t, "redeemed max", got.Redemption.Points, mx.String())
				over := mx.Add(IntPoints(1))
				in.Redeem = &over
				_, err := Quote(in)
				var re *RedeemError
				if !errors.As(err, &re) || !errors.Is(err, ErrRedeemNotAllowed) || re.Limit != tt.wantLimit {
					t.Errorf("over max: err = %v, want RedeemError limit %s", err, tt.wantLimit)
				}
			}
		})
	}
}

// Requests below the maximum: any amount, except under the minimum or, in
// all-or-nothing mode, anything but everything.
func TestRedeemRequests(t *testing.T) {
	lines := []Line{ln(1, "a", "1000.00", "1")}
	tests := []struct {
		name    string
		rules   RedemptionRules
		request string
		limit   string // "" = accepted
	}{
		{"any amount", RedemptionRules{}, "37", ""},
		{"below minimum", RedemptionRules{MinRedeem: MustPoints("50")}, "49", LimitMinRedeem},
		{"at minimum", RedemptionRules{MinRedeem: MustPoints("50")}, "50", ""},
		{"all or nothing partial", RedemptionRules{AllOrNothing: true}, "100", LimitAllOrNothing},
		{"all or nothing all", RedemptionRules{AllOrNothing: true}, "300", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(lines, []Program{prog(func(p *Program) { p.Redemption = tt.rules })}, crd("A", KindBonus, StateActive, lot("L", "300", 0)))
			in.Redeem = pts(tt.request)
			r, err := Quote(in)
			if tt.limit == "" {
				if err != nil {
					t.Fatalf("Quote: %v", err)
				}
				checkInvariants(t, in, r)
				eqPoints(t, "redeemed", r.Redemption.Points, tt.request)
				return
			}
			var re *RedeemError
			if !errors.As(err, &re) || re.Limit != tt.limit {
				t.Errorf("err = %v, want limit %s", err, tt.limit)
			}
		})
	}
	// Fractions finer than the program's scale are refused.
	in := input(lines, []Program{prog()}, crd("A", KindBonus, StateActive, lot("L", "300", 0)))
	in.Redeem = pts("10.5")
	if _, err := Quote(in); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("fractional request: err = %v, want ErrInvalidInput", err)
	}
}

// Item 10: tobacco gets no discount, takes no points, earns only if the
// program says so.
func TestTobacco(t *testing.T) {
	lines := []Line{ln(1, "cigs", "250.00", "2", tobacco), ln(2, "gum", "100.00", "1")}
	for _, earns := range []bool{false, true} {
		p := prog(withRules(percentRule("base", "10")), func(p *Program) {
			p.TobaccoEarns = earns
			p.EarnOnRedeemedPart = true
			p.Discount = &DiscountRules{ID: "d", Mode: DiscountCumulative, Levels: []TierLevel{{Percent: MustPercent("5")}}}
		})
		in := input(lines, []Program{p}, crd("A", KindCombined, StateActive, lot("L", "1000", 0)))
		r := mustQuote(t, in)
		eqMoney(t, "tobacco discount", r.Lines[0].Discount, "0.00")
		eqMoney(t, "gum discount", r.Lines[1].Discount, "5.00")
		if r.Lines[0].RedeemCapReason != LineExcludedTobacco || !r.Lines[0].RedeemCap.IsZero() {
			t.Errorf("tobacco cap = %s (%s)", r.Lines[0].RedeemCap, r.Lines[0].RedeemCapReason)
		}
		eqPoints(t, "max redeem", r.Redemption.Max, "95")
		want := "9" // 10 % of 95.00
		if earns {
			want = "59" // + 10 % of 500.00
		}
		eqPoints(t, "accrued", r.Cards[0].Accrued, want)
	}
}

// Item 11: earn on the whole check or only on the money part.
func TestEarnOnRedeemedPart(t *testing.T) {
	for _, tt := range []struct {
		whole bool
		want  string
	}{{true, "50"}, {false, "40"}} {
		p := prog(withRules(percentRule("base", "5")), func(p *Program) { p.EarnOnRedeemedPart = tt.whole })
		in := input([]Line{ln(1, "a", "600.00", "1"), ln(2, "b", "400.00", "1")}, []Program{p}, crd("A", KindBonus, StateActive, lot("L", "500", 0)))
		in.Redeem = pts("200")
		r := mustQuote(t, in)
		eqPoints(t, "accrued", r.Cards[0].Accrued, tt.want)
	}
}

// Item 12: the redemption is spread over lines proportionally to what each
// line may take, kopeck-exact.
func TestRedemptionAllocation(t *testing.T) {
	tests := []struct {
		name   string
		lines  []Line
		value  string
		redeem string
		want   []string
	}{
		// Whole points per line, so each line's money is its points × value.
		{"thirds", []Line{ln(1, "a", "100.00", "1"), ln(2, "b", "100.00", "1"), ln(3, "c", "100.00", "1")}, "1.00", "100", []string{"34.00", "33.00", "33.00"}},
		{"proportional", []Line{ln(1, "a", "300.00", "1"), ln(2, "b", "100.00", "1")}, "1.00", "100", []string{"75.00", "25.00"}},
		{"tobacco skipped", []Line{ln(1, "a", "300.00", "1"), ln(2, "t", "500.00", "1", tobacco), ln(3, "b", "100.00", "1")}, "1.00", "100", []string{"75.00", "0.00", "25.00"}},
		{"whole line", []Line{ln(1, "a", "0.01", "1"), ln(2, "b", "0.02", "1")}, "0.01", "3", []string{"0.01", "0.02"}},
		{"remainders", []Line{ln(1, "a", "0.07", "1"), ln(2, "b", "0.07", "1"), ln(3, "c", "0.07", "1")}, "0.01", "10", []string{"0.04", "0.03", "0.03"}},
		// Caps 100 and 200 points: 7 × 1/3 = 2.33 → 2, 7 × 2/3 = 4.67 → 5.
		{"point value 0.10", []Line{ln(1, "a", "10.00", "1"), ln(2, "b", "20.00", "1")}, "0.10", "7", []string{"0.20", "0.50"}},
		// A line's cap in points is floor(cap / value): 0.25 → 2 points of 0.10.
		{"cap in whole points", []Line{ln(1, "a", "0.25", "1"), ln(2, "b", "0.25", "1")}, "0.10", "4", []string{"0.20", "0.20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prog(func(p *Program) { p.PointValue = MustMoney(tt.value) })
			in := input(tt.lines, []Program{p}, crd("A", KindBonus, StateActive, lot("L", "100000", 0)))
			in.Redeem = pts(tt.redeem)
			r := mustQuote(t, in)
			for i, w := range tt.want {
				eqMoney(t, "line", r.Lines[i].Redeemed, w)
			}
		})
	}
}

// Fractional points: the money (points × value, down to the kopeck) is
// spread over the lines by their points, kopeck-exact.
func TestRedemptionAllocationFractionalPoints(t *testing.T) {
	p := prog(func(p *Program) { p.PointValue = MustMoney("0.25"); p.PointRounding = Rounding{Scale: 1} })
	in := input([]Line{ln(1, "a", "1.00", "1"), ln(2, "b", "1.00", "1")}, []Program{p}, crd("A", KindBonus, StateActive, lot("L", "100", 0)))
	in.Redeem = pts("2.5") // 0.625 roubles → 0.62
	r := mustQuote(t, in)
	eqMoney(t, "money", r.Redemption.Money, "0.62")
	eqPoints(t, "line 1 points", r.Lines[0].RedeemedPoints, "1.3")
	eqPoints(t, "line 2 points", r.Lines[1].RedeemedPoints, "1.2")
	eqMoney(t, "line 1", r.Lines[0].Redeemed, "0.32") // 62 × 13/25 = 32.24
	eqMoney(t, "line 2", r.Lines[1].Redeemed, "0.30") // 29.76 takes the leftover kopeck
}

// Item 14: every point and kopeck is explained by a named rule (the sums are
// checked by checkInvariants on every quote); here the codes and rules of a
// full example.
func TestExplanation(t *testing.T) {
	p := prog(withRules(percentRule("base", "3"), AccrualRule{ID: "agent", Kind: AccrualFixed, For: ForAgent, Points: MustPoints("50")}), func(p *Program) {
		p.Promotions = []Promotion{{ID: "x2", Scope: ScopeAll, Multiplier: MustFactor("2")}}
		p.Discount = &DiscountRules{ID: "vip", Mode: DiscountCumulative, Levels: []TierLevel{{Percent: MustPercent("2")}}}
		p.MonthlyAccrualCap = pts("1000")
	})
	c := crd("A", KindCombined, StateActive, lot("L", "100", 0))
	c.AccruedThisMonth = MustPoints("990")
	in := input([]Line{ln(1, "a", "333.33", "1"), ln(2, "b", "100.00", "1")}, []Program{p}, c, crd("G", KindReferral, StateActive))
	in.Redeem = pts("100")
	r := mustQuote(t, in)
	codes := map[string]string{}
	for _, e := range r.Explain {
		if e.Rule == "" && e.Code != CodeCardDenied {
			t.Errorf("explanation without a rule: %+v", e)
		}
		codes[e.Code] = e.Rule
	}
	for code, rule := range map[string]string{
		CodeDiscountCumulative: "p/vip", CodeAccrualPercent: "p/base", CodePromotion: "p/x2", CodeAccrualRounding: "p/point_rounding",
		CodeAccrualMonthlyCap: "p/monthly_accrual_cap", CodeAccrualFixed: "p/agent", CodeRedeemLine: "p/redemption",
		CodeRedeemMax: "p/redemption", CodeRedeemLot: "p/redemption", CodeLotCreated: "p/lots",
	} {
		if codes[code] != rule {
			t.Errorf("code %s: rule %q, want %q", code, codes[code], rule)
		}
	}
	eqPoints(t, "capped accrual", cardRes(t, r, "A").Accrued, "10")
	eqPoints(t, "agent accrual", cardRes(t, r, "G").Accrued, "50")
}

func TestInvalidInput(t *testing.T) {
	good := func() Input {
		return input([]Line{ln(1, "a", "10.00", "1")}, []Program{prog()}, crd("A", KindBonus, StateActive))
	}
	tests := []struct {
		name string
		mod  func(*Input)
		want error
	}{
		{"duplicate line", func(in *Input) { in.Check.Lines = append(in.Check.Lines, in.Check.Lines[0]) }, ErrInvalidInput},
		{"zero qty", func(in *Input) { in.Check.Lines[0].Qty = MustQty("0") }, ErrInvalidInput},
		{"unknown program", func(in *Input) { in.Cards[0].ProgramID = "nope" }, ErrUnknownProgram},
		{"zero point value", func(in *Input) { in.Programs[0].PointValue = Money{} }, ErrInvalidInput},
		{"bad kind", func(in *Input) { in.Cards[0].Kind = "gold" }, ErrInvalidInput},
		{"negative redeem", func(in *Input) { in.Redeem = pts("-1") }, ErrInvalidInput},
		{"redeem without card", func(in *Input) { in.Cards = nil; in.Redeem = pts("1") }, ErrCannotRedeem},
		{"unknown zone", func(in *Input) { in.Location, in.TimeZone = nil, "Mars/Olympus" }, ErrInvalidInput},
		{"negative multiplier", func(in *Input) {
			in.Programs[0].Promotions = []Promotion{{ID: "x", Scope: ScopeAll, Multiplier: MustFactor("-2")}}
		}, ErrInvalidInput},
		{"negative tier percent", func(in *Input) {
			in.Programs[0].Accrual = []AccrualRule{{ID: "t", Kind: AccrualPercent, Tiers: &TierTable{Basis: BasisCheck, Levels: []TierLevel{{Percent: MustPercent("-1")}}}}}
		}, ErrInvalidInput},
		{"redeem card not presented", func(in *Input) { in.RedeemCard = "ZZZ" }, ErrInvalidInput},
		{"now not set", func(in *Input) { in.Now = time.Time{} }, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good()
			tt.mod(&in)
			if _, err := Quote(in); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			// A quote before the check has an id (the API's /v1/quote)
			// is named as such, not "quote check :".
			in.Check.ID = ""
			if _, err := Quote(in); err == nil || !strings.HasPrefix(err.Error(), "quote: ") {
				t.Errorf("without a check id: %v, want it to start \"quote: \"", err)
			}
		})
	}
}
