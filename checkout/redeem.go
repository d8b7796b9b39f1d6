package checkout

import (
	"fmt"
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
	return Points{pointsForMoneyN(numOf(m.d), p.PointRounding.Scale, p.PointValue.Kopecks()).dec()}
}

// pointsCoveringMoney is the fewest points, at the program's point scale,
// whose value is at least m: ceil(kopecks × 10^scale / value in kopecks)
// point steps, in integers so it is exact.
func pointsCoveringMoney(m Money, p *Program) Points {
	scale := p.PointRounding.Scale
	n, ok := scaleUp(m.Kopecks(), scale)
	if !ok {
		panic(&rangeError{what: "money " + m.String() + " in point steps"})
	}
	pv := p.PointValue.Kopecks()
	return Points{fromUnits((n+pv-1)/pv, scale)}
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
	lcap := newLineCapper(rules)
	pv := p.PointValue.Kopecks()
	linesCapN := num{}
	for _, lc := range q.lines {
		lc.capN, lc.res.RedeemCapReason = lcap.lineRedeemCap(lc)
		lc.res.RedeemCap = lcap.capMoney(q, lc)
		lc.capPts = pointsForMoneyN(lc.capN, scale, pv)
		linesCapN = linesCapN.add(lc.capPts)
	}
	linesCap := Points{linesCapN.dec()}

	r := &Redemption{Card: c.card.Code, Requested: req, Limits: make([]LimitValue, 0, 5)}
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
	if trunc(c.spendable).Cmp(MaxCheckPoints) > 0 {
		add(LimitCheckPoints, MaxCheckPoints) // the journal's bound (checkPointsBound)
	}
	add(LimitLines, linesCap)
	if rules.MaxCheckPercent != nil {
		// Rounding: the percent of the check is taken down to the kopeck.
		add(LimitCheckPercent, pointsForMoney(MoneyDown(q.checkNet.d.Mul(rules.MaxCheckPercent.Fraction())), p))
	}
	if rules.MonthlyCap != nil {
		add(LimitMonthlyCap, trunc(rules.MonthlyCap.Sub(c.card.RedeemedThisMonth)))
	}
	for _, l := range c.card.RedeemCaps {
		add(l.Code, trunc(l.Points))
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
	aon := rules.allOrNothing()
	switch {
	case aon == AllOrNothingBalance && r.Max.IsPositive() && r.Max.Cmp(trunc(c.spendable)) < 0:
		r.Max, r.MaxLimit = Points{}, LimitAllOrNothing
	case aon == AllOrNothingCheck && r.Max.IsPositive():
		// Points pay the whole check or nothing. need is the fewest point
		// steps whose value (down to the kopeck) covers the check sum after
		// discounts. The maximum's value never exceeds the check (it is at
		// most Σ line caps), so need ≤ maximum means need pays the check
		// exactly, every line in full; otherwise nothing may be spent.
		switch need := pointsCoveringMoney(q.checkNet, p); {
		case need.Cmp(r.Max) > 0:
			r.Max, r.MaxLimit = Points{}, LimitWholeCheck
		case need.Cmp(rules.MinRedeem) < 0:
			r.Max, r.MaxLimit = Points{}, LimitMinRedeem
		default:
			r.Max, r.MaxLimit = need, LimitWholeCheck
		}
	}
	q.red, q.redCard = r, c

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
	case aon == AllOrNothingBalance && !req.Equal(r.Max):
		return refuse(LimitAllOrNothing)
	case aon == AllOrNothingCheck && !req.Equal(r.Max):
		return refuse(LimitWholeCheck)
	}
	q.applyRedemption(c, req)
	return nil
}

// pointsForMoneyN is pointsForMoney on a working number, with the point
// value in kopecks (pv) worked out once per quote: floor(kopecks × 10^scale
// / pv) point steps.
func pointsForMoneyN(m num, scale int32, pv int64) num {
	if !m.isPositive() {
		return num{}
	}
	n, ok := scaleUp(m.units(kopScale), scale)
	if !ok {
		panic(&rangeError{what: "money " + m.String() + " in point steps"})
	}
	return numInt(n/pv, -scale)
}

// lineCapper computes per-line redemption caps with the program's
// constants worked out once per quote.
type lineCapper struct {
	rules    *RedemptionRules
	markup   bool
	onePlusM num // 1 + markup fraction
	zero     Money
}

func newLineCapper(rules *RedemptionRules) *lineCapper {
	lc := &lineCapper{rules: rules}
	if rules.MinMarkupPercent != nil {
		lc.markup = true
		lc.onePlusM = numInt(1, 0).add(numOf(rules.MinMarkupPercent.d).shift(-2))
	}
	return lc
}

// lineRedeemCap is the most points may pay on one line, in money, and the per-line
// limit that cut it below the line's sum after discount.
func (k *lineCapper) lineRedeemCap(lc *lineCtx) (num, string) {
	rules := k.rules
	switch {
	case lc.l.Tobacco:
		return num{}, LineExcludedTobacco
	case len(rules.Segments) > 0 && !inList(rules.Segments, lc.l.Segment):
		return num{}, LineExcludedSegment
	}
	if !k.markup {
		return lc.netN, ""
	}
	if lc.l.LastPurchasePrice == nil {
		// Unknown cost: we cannot prove the margin, so the line takes no points.
		return num{}, LineMarkupUnknown
	}
	// The money part must stay at least cost × qty × (1 + markup); rounding:
	// that floor is taken UP to the kopeck so the margin is never undercut.
	floor := numOf(lc.l.LastPurchasePrice.d).mul(lc.qty).mul(k.onePlusM).roundUp(kopScale)
	capM := lc.netN.sub(floor)
	if !capM.isPositive() {
		return num{}, LineMarkup
	}
	if capM.cmp(lc.netN) >= 0 {
		return lc.netN, ""
	}
	return capM, LineMarkup
}

// capMoney is the line's cap as Money, sharing the net decimal when the cap
// is the whole net.
func (k *lineCapper) capMoney(q *quote, lc *lineCtx) Money {
	if lc.capN == lc.netN {
		return q.netMoney(lc)
	}
	if lc.capN == (num{}) {
		return Money{}
	}
	return Money{q.decs.dec(lc.capN)}
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
	// Points over lines in proportion to each line's cap in points, largest
	// remainder: no line goes over its cap, nor below zero, and excluded
	// lines (cap 0) get nothing.
	caps := make([]num, len(q.lines))
	for i, lc := range q.lines {
		caps[i] = lc.capPts
	}
	pts, _ := allocateNums(unitsOf(req.d, scale), caps)
	weights := caps // reused: the caps are no longer needed
	for i, lc := range q.lines {
		weights[i] = numInt(pts[i], -scale)
		lc.res.RedeemedPoints = Points{q.decs.dec(weights[i])}
	}
	// Money over lines in proportion to their points, largest remainder to
	// the kopeck. When points × value is whole kopecks (whole points), each
	// line's money is exactly its points × value.
	kop, _ := allocateNums(r.Money.Kopecks(), weights)
	for i, lc := range q.lines {
		lc.redeemedN = numInt(kop[i], -kopScale)
		lc.res.Redeemed = Money{q.decs.dec(lc.redeemedN)}
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
	// left is tracked as a working number; its decimal is built only when
	// a lot takes all that is left (take = min(left, remaining)).
	left, leftD := numOf(req.d), req.d
	leftFresh := true // leftD holds left
	// Count the lots the request takes, to size LotsConsumed once.
	need, rest := 0, left
	for _, i := range idx {
		if !rest.isPositive() {
			break
		}
		need++
		rest = rest.sub(numOf(lots[i].Remaining.d))
	}
	if need > 0 {
		r.LotsConsumed = make([]LotUse, 0, need)
	}
	for _, i := range idx {
		if !left.isPositive() {
			break
		}
		rem := lots[i].Remaining.d
		remN := numOf(rem)
		take, takeN := rem, remN
		if remN.cmp(left) >= 0 { // decimal.Min keeps the first on a tie
			if !leftFresh {
				leftD, leftFresh = left.dec(), true
			}
			take, takeN = leftD, left
		}
		left = left.sub(takeN)
		leftFresh = false
		r.LotsConsumed = append(r.LotsConsumed, LotUse{LotID: lots[i].ID, Points: Points{take}})
	}
}
