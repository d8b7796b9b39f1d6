package checkout

import (
	"fmt"
	"slices"

	"github.com/shopspring/decimal"
)

// accrue computes the points card c earns on this check.
//
// Every applicable rule adds raw (unrounded) points per line; promotions
// multiply the line points of customer cards. The card's raw total is then
// rounded once by the program's rule (default down to whole points), capped
// by the monthly accrual cap, and the final total is allocated back over the
// lines by largest remainder in proportion to their raw points, so line
// accruals sum exactly to the total and returns can reverse them pro rata.
func (q *quote) accrue(c *cardCtx) {
	if !c.canEarn {
		return
	}
	p := c.prog
	aud := ForCustomer
	if c.card.Kind == KindReferral {
		aud = ForAgent
	}
	raw := make([]decimal.Decimal, len(q.lines))
	var rawTotal decimal.Decimal
	store := q.in.Check.StoreID
	factors := q.promoFactors(c, aud)

	// base is what a line's accrual is computed on: the sum after discount,
	// minus the part paid with points unless the program earns on it.
	base := make([]Money, len(q.lines))
	for i, lc := range q.lines {
		base[i] = lc.net
		if !p.EarnOnRedeemedPart {
			base[i] = lc.net.Sub(lc.redeemed)
		}
	}

	for ri := range p.Accrual {
		rule := &p.Accrual[ri]
		ruleAud := rule.For
		if ruleAud == "" {
			ruleAud = ForCustomer
		}
		if ruleAud != aud || !inList(rule.Stores, store) {
			continue
		}
		ruleID := p.ID + "/" + rule.ID
		if q.checkNet.Cmp(rule.MinCheckSum) < 0 {
			q.explain(Explanation{Code: codeForKind(rule.Kind), Rule: ruleID, Card: c.card.Code, Points: q.pts(Points{}),
				Detail: fmt.Sprintf("not applied: check sum %s below minimum %s", q.checkNet, rule.MinCheckSum)})
			continue
		}
		elig := make([]bool, len(q.lines))
		anyElig := false
		for i, lc := range q.lines {
			elig[i] = lineEligible(lc.l, rule, p)
			anyElig = anyElig || elig[i]
		}
		if !anyElig {
			continue
		}
		switch rule.Kind {
		case AccrualPercent:
			pct, how := rule.Percent, fmt.Sprintf("%s%%", rule.Percent)
			if rule.Tiers != nil {
				basis := q.tierBasis(c.card, rule.Tiers.Basis)
				pct, _ = tierPercent(rule.Tiers.Levels, basis)
				how = fmt.Sprintf("%s%% (tier by %s %s)", pct, rule.Tiers.Basis, basis)
			}
			if !pct.d.IsPositive() {
				continue
			}
			frac := pct.Fraction()
			for i, lc := range q.lines {
				if !elig[i] || !base[i].IsPositive() {
					continue
				}
				pts := base[i].d.Mul(frac)
				q.lineRaw(c, ruleID, CodeAccrualPercent, lc, pts, factors[i], how+" of "+base[i].String(), raw, i, &rawTotal)
			}
		case AccrualPerUnit:
			for i, lc := range q.lines {
				if !elig[i] {
					continue
				}
				pts := rule.Points.d.Mul(lc.l.Qty.d)
				q.lineRaw(c, ruleID, CodeAccrualPerUnit, lc, pts, factors[i], fmt.Sprintf("%s per unit × %s", rule.Points, lc.l.Qty), raw, i, &rawTotal)
			}
		case AccrualFixed:
			fixedHow := "share of " + rule.Points.String() + " points per check"
			// A fixed amount per check, spread over the eligible lines in
			// proportion to their base so a partial return can reverse it.
			scale := max(p.PointRounding.Scale, -rule.Points.d.Exponent())
			w := make([]decimal.Decimal, len(q.lines))
			for i := range q.lines {
				if elig[i] {
					w[i] = base[i].d
				}
			}
			parts, ok := allocate(unitsOf(rule.Points.d, scale), w)
			if !ok { // nothing paid with money on eligible lines: first eligible line
				parts = make([]int64, len(q.lines))
				parts[slices.Index(elig, true)] = unitsOf(rule.Points.d, scale)
			}
			for i, lc := range q.lines {
				if parts[i] == 0 {
					continue
				}
				q.lineRaw(c, ruleID, CodeAccrualFixed, lc, fromUnits(parts[i], scale), lineFactor{}, fixedHow, raw, i, &rawTotal)
			}
		}
	}

	// Rounding: once per card per check, by the program's rule.
	total := p.PointRounding.Points(rawTotal)
	if total.IsNegative() {
		total = Points{}
	}
	if diff := total.d.Sub(rawTotal); !diff.IsZero() {
		q.explain(Explanation{Code: CodeAccrualRounding, Rule: p.ID + "/point_rounding", Card: c.card.Code, Points: q.pts(Points{diff}),
			Detail: fmt.Sprintf("%s raw points rounded %s to %d decimals = %s", rawTotal, modeName(p.PointRounding.Mode), p.PointRounding.Scale, total)})
	}
	if cap := p.MonthlyAccrualCap; cap != nil {
		room := Points{cap.d.Sub(c.card.AccruedThisMonth.d).Truncate(p.PointRounding.Scale)}
		if room.IsNegative() {
			room = Points{}
		}
		if total.Cmp(room) > 0 {
			q.explain(Explanation{Code: CodeAccrualMonthlyCap, Rule: p.ID + "/monthly_accrual_cap", Card: c.card.Code, Points: q.pts(room.Sub(total)),
				Detail: fmt.Sprintf("monthly cap %s, already %s this month: %s cut to %s", *cap, c.card.AccruedThisMonth, total, room)})
			total = room
		}
	}
	c.accrued = total
	if !total.IsPositive() {
		return
	}
	scale := p.PointRounding.Scale
	parts, _ := allocate(unitsOf(total.d, scale), raw)
	for i, lc := range q.lines {
		if parts[i] > 0 {
			lc.accruals = append(lc.accruals, LineAccrual{Card: c.card.Code, Points: Points{fromUnits(parts[i], scale)}})
		}
	}
	// The lot: spendable after the activation delay, lapsing ExpiryDays
	// after activation; calendar days in the store's zone.
	now := q.in.Now
	active := now.In(q.loc).AddDate(0, 0, p.ActivationDays)
	lot := &NewLot{Points: total, AccruedAt: now, ActiveFrom: active}
	if p.ActivationDays == 0 {
		lot.ActiveFrom = now
	}
	detail := fmt.Sprintf("lot of %s points, spendable from %s", total, lot.ActiveFrom.Format("2006-01-02 15:04 MST"))
	if p.ExpiryDays > 0 {
		exp := active.AddDate(0, 0, p.ExpiryDays)
		lot.ExpiresAt = &exp
		detail += ", expires " + exp.Format("2006-01-02 15:04 MST")
	}
	c.newLot = lot
	q.explain(Explanation{Code: CodeLotCreated, Rule: p.ID + "/lots", Card: c.card.Code, Points: q.pts(total), Detail: detail})
}

func modeName(m RoundingMode) string {
	if m == "" {
		return string(RoundDown)
	}
	return string(m)
}

func codeForKind(k AccrualKind) string {
	switch k {
	case AccrualFixed:
		return CodeAccrualFixed
	case AccrualPerUnit:
		return CodeAccrualPerUnit
	}
	return CodeAccrualPercent
}

// lineRaw records a rule's raw points on a line, multiplied by the line's
// promotion factors, explaining the base and each promotion's extra part.
func (q *quote) lineRaw(c *cardCtx, ruleID, code string, lc *lineCtx, pts decimal.Decimal, f lineFactor, how string, raw []decimal.Decimal, i int, total *decimal.Decimal) {
	q.explain(Explanation{Code: code, Rule: ruleID, Card: c.card.Code, Line: lc.l.No, Points: q.pts(Points{pts}), Detail: how})
	cur := pts
	if f.period != nil {
		next := cur.Mul(f.period.Multiplier.d)
		q.explain(Explanation{Code: CodePromotion, Rule: f.periodRule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(Points{next.Sub(cur)}), Detail: f.periodDetail})
		cur = next
	}
	if f.product != nil {
		next := cur.Mul(f.productMul.d)
		q.explain(Explanation{Code: CodePromotion, Rule: f.productRule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(Points{next.Sub(cur)}), Detail: f.productDetail})
		cur = next
	}
	raw[i] = raw[i].Add(cur)
	*total = total.Add(cur)
}

// lineFactor is the promotions that multiply one line's accrual: the
// winning period-wide promotion and the winning group/product promotion.
type lineFactor struct {
	period     *Promotion
	product    *Promotion
	productMul Factor
	// Rule ids and explanation texts, built once per promotion.
	periodRule, periodDetail   string
	productRule, productDetail string
}

// promoFactors finds, per line, the promotions active now (store-local
// window, store) that multiply customer accruals. Agents get no promotions.
func (q *quote) promoFactors(c *cardCtx, aud Audience) []lineFactor {
	out := make([]lineFactor, len(q.lines))
	if aud != ForCustomer {
		return out
	}
	var period *Promotion
	for i := range c.prog.Promotions {
		pr := &c.prog.Promotions[i]
		if !q.promoActive(pr) {
			continue
		}
		if pr.Scope == ScopeAll {
			if period == nil || pr.Multiplier.Cmp(period.Multiplier) > 0 {
				period = pr
			}
			continue
		}
		for li, lc := range q.lines {
			m, ok := promoCovers(pr, lc.l)
			if ok && (out[li].product == nil || m.Cmp(out[li].productMul) > 0) {
				out[li].product, out[li].productMul = pr, m
			}
		}
	}
	if period != nil {
		rule, detail := c.prog.ID+"/"+period.ID, "period promotion ×"+period.Multiplier.String()
		for i := range out {
			out[i].period, out[i].periodRule, out[i].periodDetail = period, rule, detail
		}
	}
	type key struct {
		p *Promotion
		m string
	}
	texts := map[key]string{}
	for i := range out {
		f := &out[i]
		if f.product == nil {
			continue
		}
		k := key{f.product, f.productMul.String()}
		if texts[k] == "" {
			texts[k] = "product promotion ×" + k.m + " (largest covering the line)"
		}
		f.productRule, f.productDetail = c.prog.ID+"/"+f.product.ID, texts[k]
	}
	return out
}

func (q *quote) promoActive(pr *Promotion) bool {
	if !inList(pr.Stores, q.in.Check.StoreID) {
		return false
	}
	now := q.in.Now
	if !pr.From.IsZero() && now.Before(pr.From.In(q.loc)) {
		return false
	}
	if !pr.To.IsZero() && !now.Before(pr.To.In(q.loc)) {
		return false
	}
	return true
}

// promoCovers reports whether a group/product promotion covers the line and
// with which multiplier.
func promoCovers(pr *Promotion, l *Line) (Factor, bool) {
	switch pr.Scope {
	case ScopeGroups:
		if anyIn(pr.Groups, l.Groups) {
			return pr.Multiplier, true
		}
	case ScopeProducts:
		if m, ok := pr.ProductMultipliers[l.ProductID]; ok {
			return m, true
		}
		if slices.Contains(pr.Products, l.ProductID) {
			return pr.Multiplier, true
		}
	}
	return Factor{}, false
}

// lineEligible applies a rule's product filters and the tobacco switch.
func lineEligible(l *Line, r *AccrualRule, p *Program) bool {
	if l.Tobacco && !p.TobaccoEarns {
		return false
	}
	if slices.Contains(r.ExcludeProducts, l.ProductID) || anyIn(r.ExcludeGroups, l.Groups) {
		return false
	}
	if len(r.IncludeGroups) == 0 && len(r.IncludeProducts) == 0 {
		return true
	}
	return slices.Contains(r.IncludeProducts, l.ProductID) || anyIn(r.IncludeGroups, l.Groups)
}

// tierBasis is the amount a tier table is looked up by.
func (q *quote) tierBasis(card *Card, b TierBasis) Money {
	switch b {
	case BasisPrevMonth:
		return card.PurchasesPrevMonth
	case BasisAllTime:
		return card.PurchasesAllTime.Add(q.checkNet)
	}
	return q.checkNet
}
