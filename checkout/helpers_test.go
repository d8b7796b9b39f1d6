package checkout

import (
	"math/big"
	"slices"
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
		redemptionOracle(t, in, r)
		lotsOracle(t, in, r)
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
	discountOracle(t, in, r)
	accrualOracle(t, in, r)
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

// redemptionOracle recomputes every redemption limit from the input alone,
// in plain decimal and big.Int arithmetic without engine code, and asserts
// that the redemption and its maximum are within each, that the maximum is
// the smallest limit unless a rule (minimum, all-or-nothing) zeroes it, and
// that the request respects the minimum and the all-or-nothing mode. The
// only engine output it takes as given is each line's discount (the limits
// are stated on sums after discount; discounts have their own tests).
func redemptionOracle(t *testing.T, in Input, r Result) {
	t.Helper()
	red := r.Redemption
	var card *Card
	for i := range in.Cards {
		if in.Cards[i].Code == red.Card {
			card = &in.Cards[i]
		}
	}
	if card == nil {
		t.Errorf("redemption on card %s, not presented", red.Card)
		return
	}
	var p *Program
	for i := range in.Programs {
		if in.Programs[i].ID == card.ProgramID {
			p = &in.Programs[i]
		}
	}
	rules := p.Redemption
	scale := p.PointRounding.Scale
	zero := decimal.Zero
	pvKop := big.NewInt(p.PointValue.d.Shift(2).IntPart())
	// steps converts a whole number of point steps to points.
	steps := func(n *big.Int) decimal.Decimal { return decimal.NewFromBigInt(n, -scale) }
	// pointsFor: the most points whose value fits in m roubles (whole
	// kopecks): floor(kopecks × 10^scale / point value in kopecks).
	pointsFor := func(m decimal.Decimal) decimal.Decimal {
		if !m.IsPositive() {
			return zero
		}
		k := m.Shift(2 + scale).BigInt()
		return steps(k.Quo(k, pvKop))
	}
	// whole: down to the point step, never below zero.
	whole := func(x decimal.Decimal) decimal.Decimal {
		x = x.Truncate(scale)
		if x.IsNegative() {
			return zero
		}
		return x
	}

	limits := map[string]decimal.Decimal{}
	inStore := len(p.Stores) == 0 || slices.Contains(p.Stores, in.Check.StoreID)
	canSpend := (card.Kind == KindBonus || card.Kind == KindCombined) && card.State == StateActive && inStore
	if !canSpend {
		limits[LimitCardState] = zero
	}
	// Spendable balance: lots active at Now (active_from ≤ now < expires_at)
	// minus debt.
	bal := card.Debt.d.Neg()
	for _, l := range card.Lots {
		if l.Remaining.IsPositive() && !in.Now.Before(l.ActiveFrom) && (l.ExpiresAt == nil || in.Now.Before(*l.ExpiresAt)) {
			bal = bal.Add(l.Remaining.d)
		}
	}
	limits[LimitBalance] = whole(bal)
	// Per-line caps: tobacco and other segments 0; the markup floor
	// cost × qty × (1 + markup), up to the kopeck, stays money; unknown cost 0.
	checkNet, linePts := zero, zero
	for i, l := range in.Check.Lines {
		sum := l.Sum.d
		if sum.IsZero() {
			sum = l.Price.d.Mul(l.Qty.d).Round(2)
		}
		lr := r.Lines[i]
		if !lr.Sum.d.Equal(sum) {
			t.Errorf("oracle: line %d sum %s, want %s", l.No, lr.Sum, sum)
		}
		net := sum.Sub(lr.Discount.d)
		checkNet = checkNet.Add(net)
		capM := net
		switch {
		case l.Tobacco:
			capM = zero
		case len(rules.Segments) > 0 && !slices.Contains(rules.Segments, l.Segment):
			capM = zero
		case rules.MinMarkupPercent != nil && l.LastPurchasePrice == nil:
			capM = zero
		case rules.MinMarkupPercent != nil:
			floor := l.LastPurchasePrice.d.Mul(l.Qty.d).Mul(decimal.NewFromInt(1).Add(rules.MinMarkupPercent.d.Shift(-2))).RoundUp(2)
			capM = decimal.Max(zero, decimal.Min(net, net.Sub(floor)))
		}
		if lr.Redeemed.d.GreaterThan(capM) {
			t.Errorf("oracle: line %d redeemed %s over its cap %s", l.No, lr.Redeemed, capM)
		}
		linePts = linePts.Add(pointsFor(capM))
	}
	limits[LimitLines] = linePts
	if rules.MaxCheckPercent != nil {
		limits[LimitCheckPercent] = pointsFor(checkNet.Mul(rules.MaxCheckPercent.d.Shift(-2)).Truncate(2))
	}
	if rules.MonthlyCap != nil {
		limits[LimitMonthlyCap] = whole(rules.MonthlyCap.d.Sub(card.RedeemedThisMonth.d))
	}

	least := limits[LimitBalance]
	for code, v := range limits {
		if red.Points.d.GreaterThan(v) || red.Max.d.GreaterThan(v) {
			t.Errorf("oracle: redeemed %s / max %s over limit %s = %s", red.Points, red.Max, code, v)
		}
		least = decimal.Min(least, v)
	}
	// The maximum the oracle expects.
	mode := rules.AllOrNothingMode
	if mode == "" && rules.AllOrNothing {
		mode = AllOrNothingBalance
	}
	want := least
	if want.IsPositive() && want.LessThan(rules.MinRedeem.d) {
		want = zero
	}
	// need: the fewest point steps worth at least the check.
	need := checkNet.Shift(2 + scale).BigInt()
	need.Add(need, pvKop).Sub(need, big.NewInt(1)).Quo(need, pvKop)
	switch {
	case mode == AllOrNothingBalance && want.IsPositive() && want.LessThan(limits[LimitBalance]):
		want = zero
	case mode == AllOrNothingCheck && want.IsPositive():
		if n := steps(need); n.GreaterThan(want) || n.LessThan(rules.MinRedeem.d) {
			want = zero
		} else {
			want = n
		}
	}
	if !red.Max.d.Equal(want) {
		t.Errorf("oracle: max %s (%s), want %s; limits %v", red.Max, red.MaxLimit, want, limits)
	}
	if !red.Points.IsPositive() {
		return
	}
	if red.Points.d.LessThan(rules.MinRedeem.d) {
		t.Errorf("oracle: redeemed %s below the minimum %s", red.Points, rules.MinRedeem)
	}
	if money := red.Points.d.Mul(p.PointValue.d).Truncate(2); !red.Money.d.Equal(money) {
		t.Errorf("oracle: %s points are worth %s, redeemed %s", red.Points, money, red.Money)
	}
	switch mode {
	case AllOrNothingBalance:
		if !red.Points.d.Equal(limits[LimitBalance]) {
			t.Errorf("oracle: all or nothing: redeemed %s of balance %s", red.Points, limits[LimitBalance])
		}
	case AllOrNothingCheck:
		if !red.Money.d.Equal(checkNet) || !r.Payable.IsZero() {
			t.Errorf("oracle: whole check: redeemed %s of %s, payable %s", red.Money, checkNet, r.Payable)
		}
	}
}

// accrualOracle recomputes every card's accrual from the input alone, in
// plain decimal arithmetic without engine code, and asserts the engine's
// figure: which cards earn (kind, state, program store, a referral card only
// beside a customer card in effect), which rules apply (audience, store,
// minimum check sum), which lines are eligible (tobacco switch, include and
// exclude lists), the base (sum after discount, minus the redeemed part
// unless the program earns on it), percent and tier, per-unit and fixed
// amounts, the promotions (customer cards only, percent and per-unit
// points: the largest period-wide multiplier times the largest group or
// product multiplier on the line), one rounding per card by the program's
// rule, then the monthly cap. As in redemptionOracle, each line's discount
// and redeemed money are taken from the result (they have their own tests
// and oracle).
func accrualOracle(t *testing.T, in Input, r Result) {
	t.Helper()
	loc := in.Location
	if loc == nil {
		loc = time.UTC
		if in.TimeZone != "" {
			l, err := time.LoadLocation(in.TimeZone)
			if err != nil {
				t.Fatalf("oracle: zone %q: %v", in.TimeZone, err)
			}
			loc = l
		}
	}
	progs := map[string]*Program{}
	for i := range in.Programs {
		progs[in.Programs[i].ID] = &in.Programs[i]
	}
	store := in.Check.StoreID
	listed := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	meets := func(list, vs []string) bool {
		for _, v := range vs {
			if slices.Contains(list, v) {
				return true
			}
		}
		return false
	}
	inEffect := func(c *Card) bool {
		return c.State != StateBlocked && listed(progs[c.ProgramID].Stores, store)
	}
	customer := false
	for i := range in.Cards {
		if c := &in.Cards[i]; c.Kind != KindReferral && inEffect(c) {
			customer = true
		}
	}
	checkNet := decimal.Zero
	nets := make([]decimal.Decimal, len(in.Check.Lines))
	for i, l := range in.Check.Lines {
		sum := l.Sum.d
		if sum.IsZero() {
			sum = l.Price.d.Mul(l.Qty.d).Round(2)
		}
		nets[i] = sum.Sub(r.Lines[i].Discount.d)
		checkNet = checkNet.Add(nets[i])
	}
	for ci := range in.Cards {
		c := &in.Cards[ci]
		p := progs[c.ProgramID]
		want := decimal.Zero
		earns := (c.Kind == KindBonus || c.Kind == KindCombined || (c.Kind == KindReferral && customer)) && inEffect(c)
		if earns {
			aud := ForCustomer
			if c.Kind == KindReferral {
				aud = ForAgent
			}
			// Promotions: the largest active period-wide multiplier, and per
			// line the largest group or product multiplier.
			period := decimal.NewFromInt(1)
			lineMul := make([]decimal.Decimal, len(in.Check.Lines))
			for i := range lineMul {
				lineMul[i] = decimal.NewFromInt(1)
			}
			if aud == ForCustomer {
				havePeriod := false
				best := make([]*decimal.Decimal, len(in.Check.Lines))
				for _, pr := range p.Promotions {
					if !listed(pr.Stores, store) || (!pr.From.IsZero() && in.Now.Before(pr.From.In(loc))) || (!pr.To.IsZero() && !in.Now.Before(pr.To.In(loc))) {
						continue
					}
					if pr.Scope == ScopeAll {
						if !havePeriod || pr.Multiplier.d.GreaterThan(period) {
							period, havePeriod = pr.Multiplier.d, true
						}
						continue
					}
					for i, l := range in.Check.Lines {
						var m *decimal.Decimal
						switch {
						case pr.Scope == ScopeGroups && meets(pr.Groups, l.Groups):
							m = &pr.Multiplier.d
						case pr.Scope == ScopeProducts:
							if f, ok := pr.ProductMultipliers[l.ProductID]; ok {
								m = &f.d
							} else if slices.Contains(pr.Products, l.ProductID) {
								m = &pr.Multiplier.d
							}
						}
						if m != nil && (best[i] == nil || m.GreaterThan(*best[i])) {
							v := *m
							best[i] = &v
						}
					}
				}
				for i := range best {
					if best[i] != nil {
						lineMul[i] = *best[i]
					}
				}
			}
			raw := decimal.Zero
			for _, rule := range p.Accrual {
				ra := rule.For
				if ra == "" {
					ra = ForCustomer
				}
				if ra != aud || !listed(rule.Stores, store) || checkNet.LessThan(rule.MinCheckSum.d) {
					continue
				}
				var elig []int
				for i, l := range in.Check.Lines {
					switch {
					case l.Tobacco && !p.TobaccoEarns:
					case slices.Contains(rule.ExcludeProducts, l.ProductID) || meets(rule.ExcludeGroups, l.Groups):
					case (len(rule.IncludeGroups) > 0 || len(rule.IncludeProducts) > 0) &&
						!slices.Contains(rule.IncludeProducts, l.ProductID) && !meets(rule.IncludeGroups, l.Groups):
					default:
						elig = append(elig, i)
					}
				}
				if len(elig) == 0 {
					continue
				}
				switch rule.Kind {
				case AccrualPercent:
					pct := rule.Percent.d
					if rule.Tiers != nil {
						basis := checkNet
						switch rule.Tiers.Basis {
						case BasisPrevMonth:
							basis = c.PurchasesPrevMonth.d
						case BasisAllTime:
							basis = c.PurchasesAllTime.d.Add(checkNet)
						}
						pct = decimal.Zero
						var from *decimal.Decimal
						for _, lv := range rule.Tiers.Levels {
							if !lv.From.d.GreaterThan(basis) && (from == nil || lv.From.d.GreaterThan(*from)) {
								f := lv.From.d
								from, pct = &f, lv.Percent.d
							}
						}
					}
					for _, i := range elig {
						base := nets[i]
						if !p.EarnOnRedeemedPart {
							base = base.Sub(r.Lines[i].Redeemed.d)
						}
						if base.IsPositive() {
							raw = raw.Add(base.Mul(pct).Shift(-2).Mul(period).Mul(lineMul[i]))
						}
					}
				case AccrualPerUnit:
					for _, i := range elig {
						raw = raw.Add(rule.Points.d.Mul(in.Check.Lines[i].Qty.d).Mul(period).Mul(lineMul[i]))
					}
				case AccrualFixed:
					raw = raw.Add(rule.Points.d)
				}
			}
			sc := p.PointRounding.Scale
			switch p.PointRounding.Mode {
			case RoundHalfUp:
				want = raw.Round(sc)
			case RoundUp:
				want = raw.RoundUp(sc)
			case RoundHalfEven:
				want = raw.RoundBank(sc)
			default:
				want = raw.Truncate(sc)
			}
			if cap := p.MonthlyAccrualCap; cap != nil {
				room := decimal.Max(decimal.Zero, cap.d.Sub(c.AccruedThisMonth.d).Truncate(sc))
				want = decimal.Min(want, room)
			}
			want = decimal.Max(want, decimal.Zero)
		}
		got := r.Cards[ci]
		if got.CanEarn != earns {
			t.Errorf("oracle: card %s can_earn = %v, want %v", c.Code, got.CanEarn, earns)
		}
		if !got.Accrued.d.Equal(want) {
			t.Errorf("oracle: card %s accrued %s, want %s", c.Code, got.Accrued, want)
		}
	}
}

// discountOracle recomputes each line's discount from the input alone: the
// first presented discount or combined card in effect whose program has
// discount rules gives it; cumulative mode takes the level by the card's
// purchases before this check, category mode the largest percent among the
// line's groups; tobacco lines get none; sum × percent half up to the
// kopeck, never above the sum.
func discountOracle(t *testing.T, in Input, r Result) {
	t.Helper()
	progs := map[string]*Program{}
	for i := range in.Programs {
		progs[in.Programs[i].ID] = &in.Programs[i]
	}
	var card *Card
	var rules *DiscountRules
	for i := range in.Cards {
		c := &in.Cards[i]
		p := progs[c.ProgramID]
		inStore := len(p.Stores) == 0 || slices.Contains(p.Stores, in.Check.StoreID)
		if (c.Kind == KindDiscount || c.Kind == KindCombined) && c.State != StateBlocked && inStore && p.Discount != nil {
			card, rules = c, p.Discount
			break
		}
	}
	for i, l := range in.Check.Lines {
		want := decimal.Zero
		if card != nil && !l.Tobacco {
			pct := decimal.Zero
			switch rules.Mode {
			case DiscountCumulative:
				var from *decimal.Decimal
				for _, lv := range rules.Levels {
					if !lv.From.d.GreaterThan(card.PurchasesAllTime.d) && (from == nil || lv.From.d.GreaterThan(*from)) {
						f := lv.From.d
						from, pct = &f, lv.Percent.d
					}
				}
			case DiscountCategory:
				for _, cat := range rules.Categories {
					if slices.Contains(l.Groups, cat.Group) && cat.Percent.d.GreaterThan(pct) {
						pct = cat.Percent.d
					}
				}
			}
			sum := r.Lines[i].Sum.d
			if pct.IsPositive() {
				want = decimal.Min(sum, sum.Mul(pct).Shift(-2).Round(2))
			}
		}
		if !r.Lines[i].Discount.d.Equal(want) {
			t.Errorf("oracle: line %d discount %s, want %s", l.No, r.Lines[i].Discount, want)
		}
	}
}

// lotsOracle recomputes the lots a redemption consumes (item 8): the card's
// lots active at now with points left, soonest-expiring first (never
// expiring last), then the earliest activated, then input order; each taken
// whole until the last, which gives what is left of the request.
func lotsOracle(t *testing.T, in Input, r Result) {
	t.Helper()
	red := r.Redemption
	var card *Card
	for i := range in.Cards {
		if in.Cards[i].Code == red.Card {
			card = &in.Cards[i]
		}
	}
	if card == nil {
		return // redemptionOracle reports it
	}
	var active []int
	for i, l := range card.Lots {
		if l.Remaining.IsPositive() && !in.Now.Before(l.ActiveFrom) && (l.ExpiresAt == nil || in.Now.Before(*l.ExpiresAt)) {
			active = append(active, i)
		}
	}
	slices.SortStableFunc(active, func(a, b int) int {
		la, lb := card.Lots[a], card.Lots[b]
		switch {
		case la.ExpiresAt == nil && lb.ExpiresAt != nil:
			return 1
		case la.ExpiresAt != nil && lb.ExpiresAt == nil:
			return -1
		case la.ExpiresAt != nil && !la.ExpiresAt.Equal(*lb.ExpiresAt):
			return la.ExpiresAt.Compare(*lb.ExpiresAt)
		}
		return la.ActiveFrom.Compare(lb.ActiveFrom)
	})
	var want []LotUse
	left := red.Points.d
	for _, i := range active {
		if !left.IsPositive() {
			break
		}
		take := decimal.Min(left, card.Lots[i].Remaining.d)
		want = append(want, LotUse{LotID: card.Lots[i].ID, Points: Points{take}})
		left = left.Sub(take)
	}
	if len(want) != len(red.LotsConsumed) {
		t.Errorf("oracle: lots consumed %v, want %v", red.LotsConsumed, want)
		return
	}
	for i := range want {
		if got := red.LotsConsumed[i]; got.LotID != want[i].LotID || !got.Points.Equal(want[i].Points) {
			t.Errorf("oracle: lots consumed %v, want %v", red.LotsConsumed, want)
			return
		}
	}
}
