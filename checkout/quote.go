package checkout

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Quote prices a check: discounts, the redemption limits and the requested
// redemption with its allocation over lines, and every card's accrual with
// the lot it creates. It is a pure function of its input.
//
// Order of application: line sums → discounts → redemption (on sums after
// discounts) → accrual (on sums after discounts, minus the redeemed part
// unless the program earns on it).
func Quote(in Input) (_ Result, err error) {
	// A quote asked before the check has an id is "quote", not "quote check ".
	op := "quote"
	if in.Check.ID != "" {
		op = "quote check " + in.Check.ID
	}
	defer nameOp(&err, op)
	loc, err := zone(in.Location, in.TimeZone)
	if err != nil {
		return Result{}, err
	}
	if in.Now.IsZero() {
		return Result{}, fmt.Errorf("now not set: %w", ErrInvalidInput)
	}
	q := &quote{in: &in, loc: loc}
	if err := q.prepareLines(); err != nil {
		return Result{}, err
	}
	progs, err := indexPrograms(in.Programs)
	if err != nil {
		return Result{}, err
	}
	q.cards = make([]*cardCtx, len(in.Cards))
	cards := make([]cardCtx, len(in.Cards))
	for i := range in.Cards {
		if err := newCardCtx(&cards[i], &in.Cards[i], progs, in.Check.StoreID, in.Now); err != nil {
			return Result{}, err
		}
		q.cards[i] = &cards[i]
	}
	if err := checkCardRoles(q.cards); err != nil {
		return Result{}, err
	}
	q.discount()
	if err := q.redeem(); err != nil {
		return Result{}, err
	}
	// The explanations are written once everything before the accrual is
	// known, so the slice (a large struct per entry) is allocated once at
	// its final size.
	q.startExplanations()
	for _, c := range q.cards {
		q.accrue(c)
	}
	res := q.result()
	if err := checkPointsBound(res.Cards); err != nil {
		return Result{}, err
	}
	return res, nil
}

// checkPointsBound refuses a check accruing or redeeming more than
// MaxCheckPoints on a card: head office refuses journal entries beyond it, so
// the sale would be printed and then not count (a redemption spendable
// again: a double spend).
func checkPointsBound(cards []CardResult) error {
	for _, c := range cards {
		if c.Accrued.d.GreaterThan(MaxCheckPoints.d) || c.Redeemed.d.GreaterThan(MaxCheckPoints.d) {
			return fmt.Errorf("card %s: accrual %s or redemption %s over %s points, the most one check may move: %w",
				c.Code, c.Accrued, c.Redeemed, MaxCheckPoints, errRange)
		}
	}
	return nil
}

// quote is the working state of one Quote call.
type quote struct {
	in        *Input
	loc       *time.Location
	lines     []*lineCtx
	res       []LineResult // Result.Lines, filled through lineCtx.res
	cards     []*cardCtx
	checkNet  Money // Σ line sums after discounts
	checkNetN num
	red       *Redemption
	// What the pre-accrual explanations need: the discounting card and
	// the start of its cumulative text; the spending card.
	discCard *cardCtx
	discHead string
	redCard  *cardCtx
	// byProduct indexes the lines by product for product promotions.
	byProduct *productLines
	expl      []Explanation
	// Explanation texts are written one after another into text; ends[i]
	// is where explanation i's text ends. result() slices the one string,
	// so the details cost one buffer in all instead of an allocation (or a
	// fmt.Sprintf) each.
	text strings.Builder
	ends []int

	ptsSlab   []Points
	moneySlab []Money
	decs      decCache
}

// lineCtx is the working state of one line. Amounts are worked out as
// nums; res is the line's entry in Result.Lines, filled as the quote goes
// (Money and Points there are built once, at their final value).
type lineCtx struct {
	l         *Line
	res       *LineResult
	qty       num
	sumN      num
	sumSet    bool // res.Sum holds sumN
	netSet    bool // net holds netN
	discN     num
	discPct   num    // category percent, for the explanation
	discGroup string // category group, for the explanation
	netN      num    // sum − discount
	net       Money  // materialised lazily from netN (netSet)
	capN      num    // redemption cap in money
	capPts    num    // capN in whole point steps
	redeemedN num
}

// sumMoney and netMoney give the line sum and the sum after discount as
// Money, building each decimal at most once per line.
func (q *quote) sumMoney(lc *lineCtx) Money {
	if !lc.sumSet {
		lc.res.Sum, lc.sumSet = Money{q.decs.dec(lc.sumN)}, true
	}
	return lc.res.Sum
}

func (q *quote) netMoney(lc *lineCtx) Money {
	if lc.discN.isZero() {
		return q.sumMoney(lc)
	}
	if !lc.netSet {
		lc.net, lc.netSet = Money{q.decs.dec(lc.netN)}, true
	}
	return lc.net
}

type cardCtx struct {
	card        *Card
	prog        *Program
	canEarn     bool
	canSpend    bool
	canDiscount bool
	reason      string
	discPct     *Percent
	balance     Points // unexpired remaining − debt
	spendable   Points // active remaining − debt, ≥ 0
	accrued     Points
	newLot      *NewLot
	redeemed    Points
	// For accrue, worked out by prepareAccrual: the promotions multiplying
	// the card's line accruals, each line's base, and per rule whether it
	// applies to the card (ruleOn) and which lines are eligible (elig,
	// rule-major).
	promo  promoSet
	base   []num
	ruleOn []bool
	elig   []bool
}

// explain records an explanation whose Detail is already a string.
func (q *quote) explain(e Explanation) {
	q.text.WriteString(e.Detail)
	e.Detail = ""
	q.push(e)
}

// writeNum appends a number's text to the explanation text: decimal's
// String() when fixed is −1, StringFixed(fixed) otherwise.
func (q *quote) writeNum(n num, fixed int32) {
	var buf [32]byte
	q.text.Write(n.appendText(buf[:0], fixed))
}

// push records an explanation whose Detail text the caller has just
// appended to q.text.
func (q *quote) push(e Explanation) {
	q.expl = append(q.expl, e)
	q.ends = append(q.ends, q.text.Len())
}

// pts and money return pointers for Explanation fields, carved from slabs
// (sized by startExplanations; a new slab of 128 if one runs out) instead of
// one allocation per entry.
func (q *quote) pts(p Points) *Points {
	if len(q.ptsSlab) == cap(q.ptsSlab) {
		q.ptsSlab = make([]Points, 0, 128)
	}
	q.ptsSlab = append(q.ptsSlab, p)
	return &q.ptsSlab[len(q.ptsSlab)-1]
}

func (q *quote) money(m Money) *Money {
	if len(q.moneySlab) == cap(q.moneySlab) {
		q.moneySlab = make([]Money, 0, 128)
	}
	q.moneySlab = append(q.moneySlab, m)
	return &q.moneySlab[len(q.moneySlab)-1]
}

// zone resolves the store's time zone. time.LoadLocation reads the zone
// database; callers on the hot path pass Location instead.
func zone(loc *time.Location, name string) (*time.Location, error) {
	if loc != nil {
		return loc, nil
	}
	if name == "" {
		return time.UTC, nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("store time zone %q: %w: %v", name, ErrInvalidInput, err)
	}
	return l, nil
}

func (q *quote) prepareLines() error {
	lines := q.in.Check.Lines
	// Duplicate line numbers: a flag per number when they are small (the
	// usual 1…n), a map otherwise.
	maxNo := 0
	for i := range lines {
		maxNo = max(maxNo, lines[i].No)
	}
	var seenSmall []bool
	var seenMap map[int]bool
	if maxNo <= 4*len(lines)+64 {
		seenSmall = make([]bool, maxNo+1)
	} else {
		seenMap = make(map[int]bool, len(lines))
	}
	q.lines = make([]*lineCtx, len(lines))
	ctxs := make([]lineCtx, len(lines))
	q.res = make([]LineResult, len(lines))
	// One backing array for every line's accruals (at most one per card).
	nc := len(q.in.Cards)
	accs := make([]LineAccrual, len(lines)*nc)
	var total num // Σ line sums, against MaxCheckTotal
	for i := range lines {
		l := &lines[i]
		seen := false
		if l.No > 0 {
			if seenSmall != nil {
				seen = seenSmall[l.No]
			} else {
				seen = seenMap[l.No]
			}
		}
		switch {
		case l.No <= 0:
			return fmt.Errorf("line %d: number must be positive: %w", i+1, ErrInvalidInput)
		case seen:
			return fmt.Errorf("line %d: duplicate line number: %w", l.No, ErrInvalidInput)
		case !l.Qty.IsPositive():
			return fmt.Errorf("line %d: quantity %s must be positive: %w", l.No, l.Qty, ErrInvalidInput)
		case l.Price.IsNegative() || l.Sum.IsNegative():
			return fmt.Errorf("line %d: negative price or sum: %w", l.No, ErrInvalidInput)
		}
		if err := checkLineBounds(l); err != nil {
			return err
		}
		if seenSmall != nil {
			seenSmall[l.No] = true
		} else {
			seenMap[l.No] = true
		}
		lc := &ctxs[i]
		res := &q.res[i]
		*res = LineResult{No: l.No, ProductID: l.ProductID, Qty: l.Qty, Accruals: accs[i*nc : i*nc : i*nc+nc]}
		*lc = lineCtx{l: l, res: res, qty: numOf(l.Qty.d)}
		if l.Sum.IsZero() {
			// Rounding: line sum = price × qty, half up to the kopeck.
			lc.sumN = numOf(l.Price.d).mul(lc.qty).round(kopScale)
		} else {
			lc.sumN, res.Sum, lc.sumSet = numOf(l.Sum.d), l.Sum, true
		}
		// Bounded here, before any sum is converted to int64 kopecks.
		if lc.sumN.cmp(maxTotalN) > 0 {
			return fmt.Errorf("line %d: sum %s over the maximum check total %s: %w", l.No, Money{lc.sumN.dec()}, MaxCheckTotal, errRange)
		}
		total = total.add(lc.sumN)
		// Until a discount applies, the net is the sum itself.
		lc.netN = lc.sumN
		q.lines[i] = lc
	}
	if total.cmp(maxTotalN) > 0 {
		return fmt.Errorf("check total %s over the maximum %s: %w", Money{total.dec()}, MaxCheckTotal, errRange)
	}
	return nil
}

func indexPrograms(ps []Program) (map[string]*Program, error) {
	m := make(map[string]*Program, len(ps))
	for i := range ps {
		p := &ps[i]
		if err := ValidateProgram(p); err != nil {
			return nil, err
		}
		m[p.ID] = p
	}
	return m, nil
}

// ValidateProgram checks a program as Quote and Return do before using it:
// the replica import (store.Replica.Validate) applies it too, so that head
// office refuses a program every till's engine would refuse.
func ValidateProgram(p *Program) error {
	if p.ID == "" {
		return fmt.Errorf("program with empty id: %w", ErrInvalidInput)
	}
	if !p.PointValue.IsPositive() {
		return fmt.Errorf("program %s: point value %s must be positive: %w", p.ID, p.PointValue, ErrInvalidInput)
	}
	if p.PointValue.Cmp(MaxPointValue) > 0 {
		return fmt.Errorf("program %s: point value %s over the maximum %s: %w", p.ID, p.PointValue, MaxPointValue, errRange)
	}
	switch p.Redemption.AllOrNothingMode {
	case "", AllOrNothingBalance, AllOrNothingCheck:
	default:
		return fmt.Errorf("program %s: unknown all_or_nothing_mode %q: %w", p.ID, p.Redemption.AllOrNothingMode, ErrInvalidInput)
	}
	if err := p.PointRounding.Valid(); err != nil {
		return fmt.Errorf("program %s: %w: %v", p.ID, ErrInvalidInput, err)
	}
	if p.ActivationDays < 0 || p.ExpiryDays < 0 {
		return fmt.Errorf("program %s: negative activation or expiry days: %w", p.ID, ErrInvalidInput)
	}
	for _, r := range p.Accrual {
		switch r.Kind {
		case AccrualPercent, AccrualFixed, AccrualPerUnit:
		default:
			return fmt.Errorf("program %s rule %s: unknown accrual kind %q: %w", p.ID, r.ID, r.Kind, ErrInvalidInput)
		}
		switch r.For {
		case "", ForCustomer, ForAgent:
		default:
			return fmt.Errorf("program %s rule %s: unknown audience %q: %w", p.ID, r.ID, r.For, ErrInvalidInput)
		}
		if r.Percent.d.IsNegative() || r.Points.IsNegative() {
			return fmt.Errorf("program %s rule %s: negative percent or points: %w", p.ID, r.ID, ErrInvalidInput)
		}
		if r.Percent.d.GreaterThan(maxRulePercent) || r.Points.d.GreaterThan(MaxCheckPoints.d) {
			return fmt.Errorf("program %s rule %s: percent %s or points %s over %s%% or %s: %w", p.ID, r.ID, r.Percent, r.Points, maxRulePercent, MaxCheckPoints, errRange)
		}
		if r.Tiers != nil {
			switch r.Tiers.Basis {
			case BasisCheck, BasisPrevMonth, BasisAllTime:
			default:
				return fmt.Errorf("program %s rule %s: unknown tier basis %q: %w", p.ID, r.ID, r.Tiers.Basis, ErrInvalidInput)
			}
		}
	}
	for _, pr := range p.Promotions {
		switch pr.Scope {
		case ScopeAll, ScopeGroups, ScopeProducts:
		default:
			return fmt.Errorf("program %s promotion %s: unknown scope %q: %w", p.ID, pr.ID, pr.Scope, ErrInvalidInput)
		}
		bad := pr.Multiplier.d.IsNegative() || pr.Multiplier.d.GreaterThan(maxMultiplier)
		for _, m := range pr.ProductMultipliers {
			bad = bad || m.d.IsNegative() || m.d.GreaterThan(maxMultiplier)
		}
		if bad {
			return fmt.Errorf("program %s promotion %s: multiplier outside 0..%s: %w", p.ID, pr.ID, maxMultiplier, ErrInvalidInput)
		}
	}
	// Every percent of the program must be ≥ 0; the first negative one is
	// named (tier levels, discount levels, categories, redemption limits).
	negPct := func(pc Percent) error {
		if pc.d.IsNegative() {
			return fmt.Errorf("program %s: negative percent %s: %w", p.ID, pc, ErrInvalidInput)
		}
		return nil
	}
	for _, r := range p.Accrual {
		if r.Tiers != nil {
			for _, l := range r.Tiers.Levels {
				if err := negPct(l.Percent); err != nil {
					return err
				}
				if l.Percent.d.GreaterThan(maxRulePercent) {
					return fmt.Errorf("program %s rule %s: tier percent %s over %s%%: %w", p.ID, r.ID, l.Percent, maxRulePercent, errRange)
				}
			}
		}
	}
	if d := p.Discount; d != nil {
		for _, l := range d.Levels {
			if err := negPct(l.Percent); err != nil {
				return err
			}
		}
		for _, c := range d.Categories {
			if err := negPct(c.Percent); err != nil {
				return err
			}
		}
	}
	if r := p.Redemption; r.MaxCheckPercent != nil {
		if err := negPct(*r.MaxCheckPercent); err != nil {
			return err
		}
	}
	if r := p.Redemption; r.MinMarkupPercent != nil {
		if err := negPct(*r.MinMarkupPercent); err != nil {
			return err
		}
	}
	if d := p.Discount; d != nil {
		for _, l := range d.Levels {
			if numOf(l.Percent.d).cmp(numInt(100, 0)) > 0 {
				return fmt.Errorf("program %s: discount %s%% over 100: %w", p.ID, l.Percent, ErrInvalidInput)
			}
		}
	}
	if d := p.Discount; d != nil && d.Mode != DiscountCumulative && d.Mode != DiscountCategory {
		return fmt.Errorf("program %s: unknown discount mode %q: %w", p.ID, d.Mode, ErrInvalidInput)
	}
	switch p.NegativeBalance.Mode {
	case "", NegativeForbid, NegativeAllow, NegativeLimit, NegativeDeductRefund:
	default:
		return fmt.Errorf("program %s: unknown negative balance mode %q: %w", p.ID, p.NegativeBalance.Mode, ErrInvalidInput)
	}
	return nil
}

func newCardCtx(c *cardCtx, card *Card, progs map[string]*Program, store string, now time.Time) error {
	p, ok := progs[card.ProgramID]
	if !ok {
		return fmt.Errorf("card %s: program %q: %w", card.Code, card.ProgramID, ErrUnknownProgram)
	}
	*c = cardCtx{card: card, prog: p}
	switch card.Kind {
	case KindBonus, KindDiscount, KindCombined, KindReferral:
	default:
		return fmt.Errorf("card %s: unknown kind %q: %w", card.Code, card.Kind, ErrInvalidInput)
	}
	points := card.Kind == KindBonus || card.Kind == KindCombined || card.Kind == KindReferral
	c.canEarn = points
	c.canSpend = card.Kind == KindBonus || card.Kind == KindCombined
	c.canDiscount = card.Kind == KindDiscount || card.Kind == KindCombined
	switch card.State {
	case StateActive:
	case StateIssued:
		// Issued cards earn (and get their discount) but cannot spend until
		// the customer registers them.
		if c.canSpend {
			c.canSpend = false
			c.reason = ReasonIssued
		}
	case StateBlocked:
		c.canEarn, c.canSpend, c.canDiscount = false, false, false
		c.reason = ReasonBlocked
		if card.BlockReason != "" {
			c.reason += ": " + card.BlockReason
		}
	default:
		return fmt.Errorf("card %s: unknown state %q: %w", card.Code, card.State, ErrInvalidInput)
	}
	if !inList(p.Stores, store) {
		c.canEarn, c.canSpend, c.canDiscount = false, false, false
		c.reason = ReasonProgramStore
	}
	c.balance, c.spendable = balances(card, now)
	return nil
}

// checkCardRoles enforces the spec's "one customer card, optionally one
// referral card beside it": a check with two customer cards (bonus,
// discount, combined) or two referral cards in effect is refused with a
// *CardsError naming them, so no card accrues on a check it shares with
// another of its kind. Cards that do nothing (blocked, program not in the
// store) are not counted: they stay in the result with their reason. A
// referral card with no customer card in effect earns nothing
// (ReasonAgentNoCustomer): the agent is paid for bringing a customer.
func checkCardRoles(cards []*cardCtx) error {
	var cust, ref int
	for _, c := range cards {
		switch {
		case !inEffect(c):
		case c.card.Kind == KindReferral:
			ref++
		default:
			cust++
		}
	}
	tooMany := func(code string, referral bool) error {
		e := &CardsError{Code: code}
		for _, c := range cards {
			if inEffect(c) && (c.card.Kind == KindReferral) == referral {
				e.Cards = append(e.Cards, c.card.Code)
			}
		}
		return e
	}
	switch {
	case cust > 1:
		return tooMany(CardsTooManyCustomer, false)
	case ref > 1:
		return tooMany(CardsTooManyReferral, true)
	case ref == 1 && cust == 0:
		for _, c := range cards {
			if c.card.Kind == KindReferral && c.canEarn {
				c.canEarn, c.reason = false, ReasonAgentNoCustomer
			}
		}
	}
	return nil
}

// inEffect reports whether a card does anything on this check.
func inEffect(c *cardCtx) bool { return c.canEarn || c.canSpend || c.canDiscount }

// balances returns the card's balance (unexpired remaining points, active or
// not yet active, minus debt) and its spendable part (active lots minus
// debt, never below zero).
func balances(card *Card, now time.Time) (balance, spendable Points) {
	var all, active sum
	for i := range card.Lots {
		l := &card.Lots[i]
		if !l.Remaining.IsPositive() || expired(l, now) {
			continue
		}
		all.add(l.Remaining.d)
		if lotActive(l, now) {
			active.add(l.Remaining.d)
		}
	}
	balance = Points{all.value().Sub(card.Debt.d)}
	spendable = Points{active.value().Sub(card.Debt.d)}
	if spendable.IsNegative() {
		spendable = Points{}
	}
	return balance, spendable
}

func expired(l *Lot, now time.Time) bool { return l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) }

func lotActive(l *Lot, now time.Time) bool { return !now.Before(l.ActiveFrom) && !expired(l, now) }

// inList reports whether v is in list; an empty list admits everything.
func inList(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, v)
}

// anyIn reports whether any of vs is in list (list non-empty).
func anyIn(list, vs []string) bool {
	for _, v := range vs {
		if slices.Contains(list, v) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- discount --

// discount applies the discount of the first presented card that gives one.
// Rounding: each line's discount is sum × percent, half up to the kopeck.
// Tobacco lines get no discount (15-FZ art. 16).
func (q *quote) discount() {
	var c *cardCtx
	for _, cc := range q.cards {
		if cc.canDiscount && cc.prog.Discount != nil {
			c = cc
			break
		}
	}
	if c != nil {
		d := c.prog.Discount
		rule := c.prog.ID + "/" + d.ID
		var cumPct Percent
		var cumHead string // "discount 3% (purchases 12000.00) of "
		if d.Mode == DiscountCumulative {
			cumPct, _ = tierPercent(d.Levels, c.card.PurchasesAllTime)
			p := cumPct
			c.discPct = &p
			cumHead = "discount " + cumPct.String() + "% (purchases " + c.card.PurchasesAllTime.String() + ") of "
		}
		for _, lc := range q.lines {
			if lc.l.Tobacco {
				continue
			}
			pct := cumPct
			var group string
			if d.Mode != DiscountCumulative {
				pct, group = categoryPercent(d.Categories, lc.l.Groups)
			}
			if !pct.d.IsPositive() {
				continue
			}
			pctN := numOf(pct.d)
			// Rounding: sum × percent, half up to the kopeck.
			disc := lc.sumN.mul(pctN.shift(-2)).round(kopScale)
			if disc.cmp(lc.sumN) > 0 {
				disc = lc.sumN
			}
			if disc.isZero() {
				continue
			}
			lc.discN, lc.res.Discount, lc.res.DiscountRule = disc, Money{q.decs.dec(disc)}, rule
			lc.netN = lc.sumN.sub(disc)
			lc.discPct, lc.discGroup = pctN, group
		}
		q.discCard, q.discHead = c, cumHead
	}
	var net int64
	for _, lc := range q.lines {
		net += lc.netN.units(kopScale)
	}
	q.checkNet = Kopecks(net)
	q.checkNetN = numInt(net, -kopScale)
}

// tierPercent picks the level with the largest From not above basis.
func tierPercent(levels []TierLevel, basis Money) (Percent, bool) {
	var best *TierLevel
	for i := range levels {
		lv := &levels[i]
		if lv.From.Cmp(basis) <= 0 && (best == nil || lv.From.Cmp(best.From) > 0) {
			best = lv
		}
	}
	if best == nil {
		return Percent{}, false
	}
	return best.Percent, true
}

func categoryPercent(cats []CategoryDiscount, groups []string) (Percent, string) {
	var best Percent
	var group string
	for _, c := range cats {
		if slices.Contains(groups, c.Group) && c.Percent.Cmp(best) > 0 {
			best, group = c.Percent, c.Group
		}
	}
	return best, group
}

func ptrMoney(m Money) *Money    { return &m }
func ptrPoints(p Points) *Points { return &p }

// ---------------------------------------------------------------- result --

func (q *quote) result() Result {
	// Explanation texts: one string for all, sliced per entry.
	text := q.text.String()
	start := 0
	for i := range q.expl {
		q.expl[i].Detail = text[start:q.ends[i]]
		start = q.ends[i]
	}
	r := Result{
		CheckID:    q.in.Check.ID,
		StoreID:    q.in.Check.StoreID,
		At:         q.in.Now,
		Lines:      q.res,
		Redemption: q.red,
		Cards:      make([]CardResult, len(q.cards)),
		Explain:    q.expl,
	}
	// Totals in integer kopecks: exact, and without an allocation per add.
	var sum, disc, red, pay int64
	for _, lc := range q.lines {
		payN := lc.netN.sub(lc.redeemedN)
		var payable Money
		if payN.c == lc.netN.c && payN.e == lc.netN.e && payN.d == nil && lc.netN.d == nil {
			payable = q.netMoney(lc) // nothing redeemed: the same decimal
		} else {
			payable = Money{q.decs.dec(payN)}
		}
		q.sumMoney(lc)
		lc.res.Payable = payable
		sum += lc.sumN.units(kopScale)
		disc += lc.discN.units(kopScale)
		red += lc.redeemedN.units(kopScale)
		pay += payN.units(kopScale)
	}
	r.Sum, r.Discount, r.Redeemed, r.Payable = Kopecks(sum), Kopecks(disc), Kopecks(red), Kopecks(pay)
	for i, c := range q.cards {
		cr := CardResult{
			Code: c.card.Code, Kind: c.card.Kind, State: c.card.State, ProgramID: c.card.ProgramID,
			CanEarn: c.canEarn, CanSpend: c.canSpend, CanDiscount: c.canDiscount, Reason: c.reason,
			DiscountPercent: c.discPct,
			BalanceBefore:   c.balance, SpendableBefore: c.spendable,
			Accrued: c.accrued, Redeemed: c.redeemed,
		}
		cr.BalanceAfter = c.balance.Sub(c.redeemed).Add(c.accrued)
		cr.SpendableAfter = c.spendable.Sub(c.redeemed)
		if c.newLot != nil {
			cr.NewLots = []NewLot{*c.newLot}
			if !q.in.Now.Before(c.newLot.ActiveFrom) {
				cr.SpendableAfter = cr.SpendableAfter.Add(c.accrued)
			}
		}
		r.Cards[i] = cr
	}
	return r
}

// sortLotsForSpending orders lots soonest-expiring first (never-expiring
// last), then by activation and input order, so spending is deterministic.
func sortLotsForSpending(idx []int, lots []Lot) {
	type key struct {
		exp, act int64
		i        int
	}
	keys := make([]key, len(idx))
	for k, i := range idx {
		l := &lots[i]
		exp := int64(math.MaxInt64)
		if l.ExpiresAt != nil {
			exp = l.ExpiresAt.UnixNano()
		}
		keys[k] = key{exp, l.ActiveFrom.UnixNano(), i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.exp, b.exp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.act, b.act); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	for k := range keys {
		idx[k] = keys[k].i
	}
}

// sum adds decimals in int64 while they share a small exponent (the usual
// case for lots: whole or fixed-scale points), falling back to decimal. It
// exists because summing 200 lots with decimal.Add allocated on every step.
type sum struct {
	fast   int64
	exp    int32
	inited bool
	slow   decimal.Decimal
}

func (s *sum) add(d decimal.Decimal) {
	if !s.inited {
		s.exp, s.inited = d.Exponent(), true
	}
	if d.Exponent() == s.exp && d.NumDigits() <= 15 && s.fast < 1<<60 && s.fast > -(1<<60) {
		s.fast += d.CoefficientInt64()
		return
	}
	s.slow = s.slow.Add(d)
}

func (s *sum) value() decimal.Decimal {
	if !s.inited {
		return decimal.Zero
	}
	return decimal.New(s.fast, s.exp).Add(s.slow)
}
