package checkout

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// spender picks the card to spend from: Input.RedeemCard, else the first
// presented card that can spend, else the first bonus or combined card (so
// the result says why it cannot). Nil when there is none.
func (q *quote) spender() (*cardCtx, error) {
	if code := q.in.RedeemCard; code != "" {
		for _, c := range q.cards {
			if c.card.Code == code {
				return c, nil
			}
		}
		return nil, fmt.Errorf("redeem card %s not presented: %w", code, ErrInvalidInput)
	}
	var first *cardCtx
	for _, c := range q.cards {
		if c.canSpend {
			return c, nil
		}
		if first == nil && (c.card.Kind == KindBonus || c.card.Kind == KindCombined) {
			first = c
		}
	}
	return first, nil
}

// pointsForMoney converts a money limit to the most points whose value fits
// in it: floor(m / value) at the program's point scale. Integer arithmetic
// on kopecks, so it is exact.
func pointsForMoney(m Money, p *Program) Points {
	if !m.IsPositive() {
		return Points{}
	}
	scale := p.PointRounding.Scale
	num := m.Kopecks()
	for i := int32(0); i < scale; i++ {
		num *= 10
	}
	return Points{fromUnits(num/p.PointValue.Kopecks(), scale)}
}

// moneyForPoints is the value of spent points: points × point value,
// rounded down to the kopeck so the customer never gets more than the
// points are worth.
func moneyForPoints(pts Points, p *Program) Money {
	return MoneyDown(pts.d.Mul(p.PointValue.d))
}

// redeem computes the redemption limits of the spending card, checks the
// cashier's request against them and allocates it over the lines.
func (q *quote) redeem() error {
	var req Points
	if q.in.Redeem != nil {
		req = *q.in.Redeem
		if req.IsNegative() {
			return fmt.Errorf("redeem %s points: negative: %w", req, ErrInvalidInput)
		}
	}
	c, err := q.spender()
	if err != nil {
		return err
	}
	if c == nil {
		if req.IsPositive() {
			return fmt.Errorf("redeem %s points: no bonus card presented: %w", req, ErrCannotRedeem)
		}
		return nil
	}
	p := c.prog
	rules := &p.Redemption
	scale := p.PointRounding.Scale
	trunc := func(x Points) Points { return Points{x.d.Truncate(scale)} }

	// Per-line caps: what points may pay on each line, in money and in
	// whole point steps (floor(cap / point value) at the program's scale), so
	// each line takes a number of points whose value fits its cap.
	var linesCapSum sum
	for _, lc := range q.lines {
		lc.redeemCap, lc.capReason = lineRedeemCap(lc, rules)
		lc.capPts = pointsForMoney(lc.redeemCap, p)
		linesCapSum.add(lc.capPts.d)
	}
	linesCap := Points{linesCapSum.value()}

	r := &Redemption{Card: c.card.Code, Requested: req}
	add := func(code string, pts Points) {
		if pts.IsNegative() {
			pts = Points{}
		}
		r.Limits = append(r.Limits, LimitValue{Code: code, Points: pts})
	}
	if !c.canSpend {
		add(LimitCardState, Points{})
	}
	add(LimitBalance, trunc(c.spendable))
	add(LimitLines, linesCap)
	if rules.MaxCheckPercent != nil {
		// Rounding: the percent of the check is taken down to the kopeck.
		add(LimitCheckPercent, pointsForMoney(MoneyDown(q.checkNet.d.Mul(rules.MaxCheckPercent.Fraction())), p))
	}
	if rules.MonthlyCap != nil {
		add(LimitMonthlyCap, trunc(rules.MonthlyCap.Sub(c.card.RedeemedThisMonth)))
	}
	// The smallest limit wins; on a tie the first evaluated is named.
	r.Max, r.MaxLimit = r.Limits[0].Points, r.Limits[0].Code
	for _, l := range r.Limits[1:] {
		if l.Points.Cmp(r.Max) < 0 {
			r.Max, r.MaxLimit = l.Points, l.Code
		}
	}
	if r.Max.IsPositive() && r.Max.Cmp(rules.MinRedeem) < 0 {
		r.Max, r.MaxLimit = Points{}, LimitMinRedeem
	}
	if rules.AllOrNothing && r.Max.IsPositive() && r.Max.Cmp(trunc(c.spendable)) < 0 {
		r.Max, r.MaxLimit = Points{}, LimitAllOrNothing
	}
	q.red = r
	q.explain(Explanation{Code: CodeRedeemMax, Rule: p.ID + "/redemption", Card: c.card.Code,
		Points: q.pts(r.Max), Detail: fmt.Sprintf("at most %s points may be spent (limit %s)", r.Max, r.MaxLimit)})

	if !req.IsPositive() {
		return nil
	}
	refuse := func(limit string) error {
		return &RedeemError{Card: c.card.Code, Requested: req, Max: r.Max, Limit: limit}
	}
	switch {
	case !c.canSpend:
		return fmt.Errorf("redeem on card %s: %s: %w", c.card.Code, c.reason, ErrCannotRedeem)
	case !req.d.Equal(req.d.Truncate(scale)):
		return fmt.Errorf("redeem %s points: finer than the program's %d decimal places: %w", req, scale, ErrInvalidInput)
	case req.Cmp(r.Max) > 0:
		return refuse(r.MaxLimit)
	case req.Cmp(rules.MinRedeem) < 0:
		return refuse(LimitMinRedeem)
	case rules.AllOrNothing && !req.Equal(r.Max):
		return refuse(LimitAllOrNothing)
	}
	q.applyRedemption(c, req)
	return nil
}

// lineRedeemCap is the most points may pay on one line, in money, and the
// per-line limit that cut it below the line's sum after discount.
func lineRedeemCap(lc *lineCtx, rules *RedemptionRules) (Money, string) {
	switch {
	case lc.l.Tobacco:
		return Money{}, LineExcludedTobacco
	case len(rules.Segments) > 0 && !inList(rules.Segments, lc.l.Segment):
		return Money{}, LineExcludedSegment
	}
	if rules.MinMarkupPercent == nil {
		return lc.net, ""
	}
	if lc.l.LastPurchasePrice == nil {
		// Unknown cost: we cannot prove the margin, so the line takes no points.
		return Money{}, LineMarkupUnknown
	}
	// The money part must stay at least cost × qty × (1 + markup); rounding:
	// that floor is taken UP to the kopeck so the margin is never undercut.
	floor := lc.l.LastPurchasePrice.d.Mul(lc.l.Qty.d).Mul(decimal.NewFromInt(1).Add(rules.MinMarkupPercent.Fraction()))
	floorM := Money{floor.RoundUp(2)}
	capM := lc.net.Sub(floorM)
	if !capM.IsPositive() {
		return Money{}, LineMarkup
	}
	if capM.Cmp(lc.net) >= 0 {
		return lc.net, ""
	}
	return capM, LineMarkup
}

// applyRedemption spends req points from card c: money value, allocation
// over lines and lots consumed.
func (q *quote) applyRedemption(c *cardCtx, req Points) {
	p := c.prog
	scale := p.PointRounding.Scale
	r := q.red
	r.Points = req
	r.Money = moneyForPoints(req, p)
	c.redeemed = req
	rule := p.ID + "/redemption"
	q.explain(Explanation{Code: CodeRedeemApplied, Rule: rule, Card: c.card.Code, Points: q.pts(req),
		Money: q.money(r.Money), Detail: fmt.Sprintf("%s points × %s roubles = %s, down to the kopeck", req, p.PointValue, r.Money)})

	// Points over lines in proportion to each line's cap in points, largest
	// remainder: no line goes over its cap, nor below zero, and excluded
	// lines (cap 0) get nothing.
	caps := make([]decimal.Decimal, len(q.lines))
	for i, lc := range q.lines {
		caps[i] = lc.capPts.d
	}
	pts, _ := allocate(unitsOf(req.d, scale), caps)
	weights := make([]decimal.Decimal, len(q.lines))
	for i, lc := range q.lines {
		lc.redeemedPt = Points{fromUnits(pts[i], scale)}
		weights[i] = lc.redeemedPt.d
	}
	// Money over lines in proportion to their points, largest remainder to
	// the kopeck. When points × value is whole kopecks (whole points), each
	// line's money is exactly its points × value.
	kop, _ := allocate(r.Money.Kopecks(), weights)
	for i, lc := range q.lines {
		lc.redeemed = Kopecks(kop[i])
		if lc.redeemed.IsZero() && lc.redeemedPt.IsZero() {
			continue
		}
		q.explain(Explanation{Code: CodeRedeemLine, Rule: rule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(lc.redeemedPt), Money: q.money(lc.redeemed),
			Detail: "share of the redemption by line cap " + lc.capPts.String() + " points (" + lc.redeemCap.String() + " roubles), largest remainder"})
	}

	// Lots: soonest-expiring active lots first.
	lots := c.card.Lots
	idx := make([]int, 0, len(lots))
	for i := range lots {
		if lots[i].Remaining.IsPositive() && lotActive(&lots[i], q.in.Now) {
			idx = append(idx, i)
		}
	}
	sortLotsForSpending(idx, lots)
	left := req.d
	for _, i := range idx {
		if !left.IsPositive() {
			break
		}
		take := decimal.Min(left, lots[i].Remaining.d)
		left = left.Sub(take)
		r.LotsConsumed = append(r.LotsConsumed, LotUse{LotID: lots[i].ID, Points: Points{take}})
		q.explain(Explanation{Code: CodeRedeemLot, Rule: rule, Card: c.card.Code, Points: q.pts(Points{take}),
			Detail: "taken from lot " + lots[i].ID + " (soonest-expiring first)"})
	}
}
