package checkout

import "fmt"

// startExplanations sizes the explanation list and writes the entries of
// everything decided before the accrual: denied cards, discounts and the
// redemption, in that order. Explanation is a large struct and a quote has
// hundreds of them, so the slice is allocated once at the exact count
// (accruals: an upper bound from the same eligibility the accrual uses).
func (q *quote) startExplanations() {
	n, nMoney := 0, 0
	for _, c := range q.cards {
		if c.reason != "" {
			n++
		}
	}
	for _, lc := range q.lines {
		if !lc.discN.isZero() {
			n++
			nMoney++
		}
	}
	if r := q.red; r != nil {
		n++ // the maximum
		if r.Points.IsPositive() {
			n += 1 + len(r.LotsConsumed)
			nMoney++
			for _, lc := range q.lines {
				if !lc.redeemedN.isZero() || !lc.res.RedeemedPoints.IsZero() {
					n++
					nMoney++
				}
			}
		}
	}
	for _, c := range q.cards {
		n += q.prepareAccrual(c)
	}
	q.expl = make([]Explanation, 0, n)
	q.ends = make([]int, 0, n)
	q.ptsSlab = make([]Points, 0, n)
	q.moneySlab = make([]Money, 0, nMoney)
	q.text.Grow(56 * n)

	for _, c := range q.cards {
		if c.reason != "" {
			q.explain(Explanation{Code: CodeCardDenied, Card: c.card.Code,
				Detail: fmt.Sprintf("card %s (%s, %s): %s", c.card.Code, c.card.Kind, c.card.State, c.reason)})
		}
	}
	q.explainDiscounts()
	q.explainRedemption()
}

// explainDiscounts writes one entry per discounted line.
func (q *quote) explainDiscounts() {
	c := q.discCard
	if c == nil {
		return
	}
	code := CodeDiscountCumulative
	if c.prog.Discount.Mode != DiscountCumulative {
		code = CodeDiscountCategory
	}
	for _, lc := range q.lines {
		if lc.discN.isZero() {
			continue
		}
		if code == CodeDiscountCumulative {
			q.text.WriteString(q.discHead)
		} else {
			q.text.WriteString("discount ")
			q.writeNum(lc.discPct, -1)
			q.text.WriteString("% for group ")
			q.text.WriteString(lc.discGroup)
			q.text.WriteString(" of ")
		}
		q.writeNum(lc.sumN, kopScale)
		q.text.WriteString(", half up to the kopeck")
		q.push(Explanation{Code: code, Rule: lc.res.DiscountRule, Card: c.card.Code, Line: lc.l.No, Money: q.money(lc.res.Discount)})
	}
}

// explainRedemption writes the maximum, and for an applied redemption its
// value, its share per line and the lots it takes.
func (q *quote) explainRedemption() {
	r, c := q.red, q.redCard
	if r == nil {
		return
	}
	p := c.prog
	rule := p.ID + "/redemption"
	q.text.WriteString("at most ")
	q.text.WriteString(r.Max.String())
	q.text.WriteString(" points may be spent (limit ")
	q.text.WriteString(r.MaxLimit)
	q.text.WriteByte(')')
	q.push(Explanation{Code: CodeRedeemMax, Rule: rule, Card: c.card.Code, Points: q.pts(r.Max)})
	if !r.Points.IsPositive() {
		return
	}
	q.text.WriteString(r.Points.String())
	q.text.WriteString(" points × ")
	q.text.WriteString(p.PointValue.String())
	q.text.WriteString(" roubles = ")
	q.text.WriteString(r.Money.String())
	q.text.WriteString(", down to the kopeck")
	q.push(Explanation{Code: CodeRedeemApplied, Rule: rule, Card: c.card.Code, Points: q.pts(r.Points), Money: q.money(r.Money)})
	for _, lc := range q.lines {
		if lc.redeemedN.isZero() && lc.res.RedeemedPoints.IsZero() {
			continue
		}
		q.text.WriteString("share of the redemption by line cap ")
		q.writeNum(lc.capPts, -1)
		q.text.WriteString(" points (")
		q.writeNum(lc.capN, kopScale)
		q.text.WriteString(" roubles), largest remainder")
		q.push(Explanation{Code: CodeRedeemLine, Rule: rule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(lc.res.RedeemedPoints), Money: q.money(lc.res.Redeemed)})
	}
	for _, u := range r.LotsConsumed {
		q.text.WriteString("taken from lot ")
		q.text.WriteString(u.LotID)
		q.text.WriteString(" (soonest-expiring first)")
		q.push(Explanation{Code: CodeRedeemLot, Rule: rule, Card: c.card.Code, Points: q.pts(u.Points)})
	}
}
