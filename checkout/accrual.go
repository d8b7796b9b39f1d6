package checkout

import (
	"fmt"
	"slices"
	"strconv"
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
	n := len(q.lines)
	raw := make([]num, n)
	var rawTotal num
	base := c.base
	ps := &c.promo
	var elig []bool

	for ri := range p.Accrual {
		rule := &p.Accrual[ri]
		if !c.ruleOn[ri] {
			continue
		}
		ruleID := p.ID + "/" + rule.ID
		if q.checkNetN.cmp(numOf(rule.MinCheckSum.d)) < 0 {
			q.explain(Explanation{Code: codeForKind(rule.Kind), Rule: ruleID, Card: c.card.Code, Points: q.pts(Points{}),
				Detail: fmt.Sprintf("not applied: check sum %s below minimum %s", q.checkNet, rule.MinCheckSum)})
			continue
		}
		elig = c.elig[ri*n : ri*n+n]
		if !slices.Contains(elig, true) {
			continue
		}
		switch rule.Kind {
		case AccrualPercent:
			pct, how := rule.Percent, rule.Percent.String()+"%"
			if rule.Tiers != nil {
				basis := q.tierBasis(c.card, rule.Tiers.Basis)
				pct, _ = tierPercent(rule.Tiers.Levels, basis)
				how = pct.String() + "% (tier by " + string(rule.Tiers.Basis) + " " + basis.String() + ")"
			}
			if !pct.d.IsPositive() {
				continue
			}
			frac := numOf(pct.d).shift(-2)
			for i, lc := range q.lines {
				if !elig[i] || !base[i].isPositive() {
					continue
				}
				pts := base[i].mul(frac)
				q.text.WriteString(how)
				q.text.WriteString(" of ")
				q.writeNum(base[i], kopScale)
				q.lineRaw(c, ruleID, CodeAccrualPercent, lc, pts, ps, raw, i, &rawTotal)
			}
		case AccrualPerUnit:
			per := numOf(rule.Points.d)
			for i, lc := range q.lines {
				if !elig[i] {
					continue
				}
				pts := per.mul(lc.qty)
				q.writeNum(per, -1)
				q.text.WriteString(" per unit × ")
				q.writeNum(lc.qty, -1)
				q.lineRaw(c, ruleID, CodeAccrualPerUnit, lc, pts, ps, raw, i, &rawTotal)
			}
		case AccrualFixed:
			fixedHow := "share of " + rule.Points.String() + " points per check"
			// A fixed amount per check, spread over the eligible lines in
			// proportion to their base so a partial return can reverse it.
			scale := max(p.PointRounding.Scale, -rule.Points.d.Exponent())
			w := make([]num, n)
			for i := range q.lines {
				if elig[i] {
					w[i] = base[i]
				}
			}
			parts, ok := allocateNums(unitsOf(rule.Points.d, scale), w)
			if !ok { // nothing paid with money on eligible lines: first eligible line
				parts = make([]int64, n)
				parts[slices.Index(elig, true)] = unitsOf(rule.Points.d, scale)
			}
			for i, lc := range q.lines {
				if parts[i] == 0 {
					continue
				}
				q.text.WriteString(fixedHow)
				q.lineRaw(c, ruleID, CodeAccrualFixed, lc, numInt(parts[i], -scale), nil, raw, i, &rawTotal)
			}
		}
	}

	// Rounding: once per card per check, by the program's rule.
	rawTotalD := rawTotal.dec()
	total := p.PointRounding.Points(rawTotalD)
	if total.IsNegative() {
		total = Points{}
	}
	if diff := total.d.Sub(rawTotalD); !diff.IsZero() {
		q.writeNum(rawTotal, -1)
		q.text.WriteString(" raw points rounded ")
		q.text.WriteString(modeName(p.PointRounding.Mode))
		q.text.WriteString(" to ")
		q.text.WriteString(strconv.Itoa(int(p.PointRounding.Scale)))
		q.text.WriteString(" decimals = ")
		q.text.WriteString(total.String())
		q.push(Explanation{Code: CodeAccrualRounding, Rule: p.ID + "/point_rounding", Card: c.card.Code, Points: q.pts(Points{diff})})
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
	parts, _ := allocateNums(unitsOf(total.d, scale), raw)
	for i, lc := range q.lines {
		if parts[i] > 0 {
			lc.res.Accruals = append(lc.res.Accruals, LineAccrual{Card: c.card.Code, Points: Points{q.decs.dec(numInt(parts[i], -scale))}})
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
	var tb [64]byte
	q.text.WriteString("lot of ")
	q.text.WriteString(total.String())
	q.text.WriteString(" points, spendable from ")
	q.text.Write(lot.ActiveFrom.AppendFormat(tb[:0], "2006-01-02 15:04 MST"))
	if p.ExpiryDays > 0 {
		exp := active.AddDate(0, 0, p.ExpiryDays)
		lot.ExpiresAt = &exp
		q.text.WriteString(", expires ")
		q.text.Write(exp.AppendFormat(tb[:0], "2006-01-02 15:04 MST"))
	}
	c.newLot = lot
	q.push(Explanation{Code: CodeLotCreated, Rule: p.ID + "/lots", Card: c.card.Code, Points: q.pts(total)})
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

// lineRaw records a rule's raw points on line i, multiplied by the card's
// promotions (ps; nil for none), explaining the base and each promotion's
// extra part. The caller has just written the base entry's text to q.text.
func (q *quote) lineRaw(c *cardCtx, ruleID, code string, lc *lineCtx, pts num, ps *promoSet, raw []num, i int, total *num) {
	q.push(Explanation{Code: code, Rule: ruleID, Card: c.card.Code, Line: lc.l.No, Points: q.pts(Points{q.decs.dec(pts)})})
	cur := pts
	if ps != nil && ps.period != nil {
		next := cur.mul(ps.periodMul)
		q.text.WriteString(ps.periodDetail)
		q.push(Explanation{Code: CodePromotion, Rule: ps.periodRule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(Points{q.decs.dec(next.sub(cur))})})
		cur = next
	}
	if ps != nil && ps.lines != nil && ps.lines[i].product != nil {
		f := &ps.lines[i]
		next := cur.mul(f.mul)
		q.text.WriteString("product promotion ×")
		q.writeNum(f.mul, -1)
		q.text.WriteString(" (largest covering the line)")
		q.push(Explanation{Code: CodePromotion, Rule: f.rule, Card: c.card.Code, Line: lc.l.No,
			Points: q.pts(Points{q.decs.dec(next.sub(cur))})})
		cur = next
	}
	raw[i] = raw[i].add(cur)
	*total = total.add(cur)
}

// promoSet is the promotions that multiply one customer card's line
// accruals: the winning period-wide promotion, and per line the winning
// group/product promotion.
type promoSet struct {
	period                   *Promotion
	periodMul                num
	periodRule, periodDetail string
	lines                    []lineFactor // nil when no group/product promotion covers a line
}

// lineFactor is the group/product promotion winning on one line.
type lineFactor struct {
	product *Promotion
	promo   int // index of product in the program's promotions
	mul     num
	rule    string
}

// promoFactors finds the promotions active now (store-local window, store)
// that multiply customer accruals. Agents get no promotions.
func (q *quote) promoFactors(c *cardCtx, aud Audience) promoSet {
	var ps promoSet
	if aud != ForCustomer {
		return ps
	}
	for i := range c.prog.Promotions {
		pr := &c.prog.Promotions[i]
		if !q.promoActive(pr) {
			continue
		}
		if pr.Scope == ScopeAll {
			if ps.period == nil || pr.Multiplier.Cmp(ps.period.Multiplier) > 0 {
				ps.period = pr
			}
			continue
		}
		consider := func(li int, m Factor) {
			if ps.lines == nil {
				ps.lines = make([]lineFactor, len(q.lines))
			}
			f := &ps.lines[li]
			if mn := numOf(m.d); f.product == nil || mn.cmp(f.mul) > 0 {
				f.product, f.promo, f.mul = pr, i, mn
			}
		}
		switch pr.Scope {
		case ScopeGroups:
			for li, lc := range q.lines {
				if anyIn(pr.Groups, lc.l.Groups) {
					consider(li, pr.Multiplier)
				}
			}
		case ScopeProducts:
			// Through the product index: a promotion names a few products,
			// a check has many lines.
			byProduct := q.productIndex()
			for prod, m := range pr.ProductMultipliers {
				for li := byProduct.first(prod); li >= 0; li = byProduct.next[li] {
					consider(li, m)
				}
			}
			for _, prod := range pr.Products {
				if _, own := pr.ProductMultipliers[prod]; own {
					continue // covered above with its own multiplier
				}
				for li := byProduct.first(prod); li >= 0; li = byProduct.next[li] {
					consider(li, pr.Multiplier)
				}
			}
		}
	}
	if ps.period != nil {
		ps.periodRule, ps.periodDetail = c.prog.ID+"/"+ps.period.ID, "period promotion ×"+ps.period.Multiplier.String()
		ps.periodMul = numOf(ps.period.Multiplier.d)
	}
	// Rule ids per winning promotion, built once each.
	var rules []string
	for i := range ps.lines {
		f := &ps.lines[i]
		if f.product == nil {
			continue
		}
		if rules == nil {
			rules = make([]string, len(c.prog.Promotions))
		}
		k := f.promo
		if rules[k] == "" {
			rules[k] = c.prog.ID + "/" + f.product.ID
		}
		f.rule = rules[k]
	}
	return ps
}

// prepareAccrual works out, for a card that earns, the promotions, each
// line's base and each rule's eligible lines (kept for accrue), and returns
// an upper bound of the explanations accrue writes.
func (q *quote) prepareAccrual(c *cardCtx) int {
	if !c.canEarn {
		return 0
	}
	p := c.prog
	aud := ForCustomer
	if c.card.Kind == KindReferral {
		aud = ForAgent
	}
	n := len(q.lines)
	c.promo = q.promoFactors(c, aud)
	// base is what a line's accrual is computed on: the sum after discount,
	// minus the part paid with points unless the program earns on it.
	c.base = make([]num, n)
	for i, lc := range q.lines {
		c.base[i] = lc.netN
		if !p.EarnOnRedeemedPart {
			c.base[i] = lc.netN.sub(lc.redeemedN)
		}
	}
	c.ruleOn = make([]bool, len(p.Accrual))
	c.elig = make([]bool, len(p.Accrual)*n)
	store := q.in.Check.StoreID
	bound := 3 // rounding, monthly cap, lot
	perLine := func(i int) int {
		k := 1
		if c.promo.period != nil {
			k++
		}
		if c.promo.lines != nil && c.promo.lines[i].product != nil {
			k++
		}
		return k
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
		c.ruleOn[ri] = true
		bound++ // "not applied", or spare
		elig := c.elig[ri*n : ri*n+n]
		for i, lc := range q.lines {
			elig[i] = lineEligible(lc.l, rule, p)
		}
		for i := range elig {
			if !elig[i] {
				continue
			}
			switch rule.Kind {
			case AccrualPercent:
				if c.base[i].isPositive() {
					bound += perLine(i)
				}
			case AccrualPerUnit:
				bound += perLine(i)
			default:
				bound++
			}
		}
	}
	return bound
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

// productLines lists the check's lines by product: first[p] is the first
// line of product p, next[i] the next line with line i's product (−1 ends).
type productLines struct {
	firsts map[string]int
	next   []int
}

func (pl *productLines) first(product string) int {
	if i, ok := pl.firsts[product]; ok {
		return i
	}
	return -1
}

// productIndex builds the check's product index once per quote.
func (q *quote) productIndex() *productLines {
	if q.byProduct != nil {
		return q.byProduct
	}
	pl := &productLines{firsts: make(map[string]int, len(q.lines)), next: make([]int, len(q.lines))}
	// Backwards, pushing each line in front: the lists come out in line order.
	for i := len(q.lines) - 1; i >= 0; i-- {
		p := q.lines[i].l.ProductID
		pl.next[i] = pl.first(p)
		pl.firsts[p] = i
	}
	q.byProduct = pl
	return pl
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
