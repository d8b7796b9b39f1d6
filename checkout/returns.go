package checkout

import (
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Return computes a full or partial return against the original result.
//
// Every amount is reversed in proportion to the returned quantity, computed
// cumulatively: this return's share is f(previous+now) − f(previous), each
// side rounded the same way, so any sequence of partial returns adds up
// exactly to the full return. Money refunds round half up to the kopeck;
// points by the card program's rule.
//
// Spent points are restored to the lots they were taken from (latest-expiring
// first, keeping their expiry). Accrued points are taken back from the
// check's own lots first, then from other lots soonest-expiring first; what
// the balance cannot cover is handled by the program's negative-balance
// policy.
func Return(in ReturnInput) (_ ReturnResult, err error) {
	orig := &in.Original
	defer nameOp(&err, "return on check "+orig.CheckID)
	if _, err := zone(in.Location, in.TimeZone); err != nil {
		return ReturnResult{}, err
	}
	if in.Now.IsZero() {
		return ReturnResult{}, fmt.Errorf("now not set: %w", ErrInvalidInput)
	}
	progs, err := indexPrograms(in.Programs)
	if err != nil {
		return ReturnResult{}, err
	}
	byNo := make(map[int]*LineResult, len(orig.Lines))
	for i := range orig.Lines {
		byNo[orig.Lines[i].No] = &orig.Lines[i]
	}
	prev, err := sumReturnLines(in.Previous, byNo)
	if err != nil {
		return ReturnResult{}, err
	}
	now, err := sumReturnLines(in.Lines, byNo)
	if err != nil {
		return ReturnResult{}, err
	}
	if len(now) == 0 {
		return ReturnResult{}, fmt.Errorf("nothing returned: %w", ErrInvalidInput)
	}
	for no, n := range now {
		if total := prev[no].Add(n); total.Cmp(byNo[no].Qty) > 0 {
			return ReturnResult{}, fmt.Errorf("line %d: %s returned in all of %s sold: %w", no, total, byNo[no].Qty, ErrReturnExceedsSale)
		}
	}
	cards := make(map[string]*Card, len(in.Cards))
	for i := range in.Cards {
		cards[in.Cards[i].Code] = &in.Cards[i]
	}
	programOf := func(code string) (*Card, *Program, error) {
		c, ok := cards[code]
		if !ok {
			return nil, nil, fmt.Errorf("card %s of the original check not loaded: %w", code, ErrInvalidInput)
		}
		p, ok := progs[c.ProgramID]
		if !ok {
			return nil, nil, fmt.Errorf("card %s: program %q: %w", code, c.ProgramID, ErrUnknownProgram)
		}
		return c, p, nil
	}

	res := ReturnResult{CheckID: orig.CheckID, At: in.Now}
	ex := func(e Explanation) { res.Explain = append(res.Explain, e) }

	// Rounding of point shares: the spender's (or earner's) program rule.
	var spendProg *Program
	var spendCard *Card
	if r := orig.Redemption; r != nil && r.Points.IsPositive() {
		if spendCard, spendProg, err = programOf(r.Card); err != nil {
			return ReturnResult{}, err
		}
	}
	restoredBefore, restoredAfter := decimal.Zero, decimal.Zero
	reversed := map[string]decimal.Decimal{} // card → points reversed now
	var cardOrder []string
	var refundTotal Money

	for _, ol := range orig.Lines {
		p, n := prev[ol.No], now[ol.No]
		if spendProg != nil && p.IsPositive() {
			restoredBefore = restoredBefore.Add(cumShare(ol.RedeemedPoints.d, p, ol.Qty, spendProg.PointRounding))
		}
		if !n.IsPositive() {
			continue
		}
		after := p.Add(n)
		lr := ReturnLineResult{No: ol.No, Qty: n}
		// Money: the share of what was paid with money, half up to the kopeck.
		lr.Refund = MoneyHalfUp(share(ol.Payable.d, after, ol.Qty)).Sub(MoneyHalfUp(share(ol.Payable.d, p, ol.Qty)))
		refundTotal = refundTotal.Add(lr.Refund)
		ex(Explanation{Code: CodeReturnRefund, Line: ol.No, Money: ptrMoney(lr.Refund),
			Detail: fmt.Sprintf("%s of %s returned: share of %s paid with money", n, ol.Qty, ol.Payable)})
		if spendProg != nil && ol.RedeemedPoints.IsPositive() {
			a := cumShare(ol.RedeemedPoints.d, after, ol.Qty, spendProg.PointRounding)
			b := cumShare(ol.RedeemedPoints.d, p, ol.Qty, spendProg.PointRounding)
			lr.RestoredPoints = Points{a.Sub(b)}
			restoredAfter = restoredAfter.Add(lr.RestoredPoints.d)
			ex(Explanation{Code: CodeReturnRestore, Rule: spendProg.ID + "/redemption", Card: spendCard.Code, Line: ol.No,
				Points: ptrPoints(lr.RestoredPoints), Detail: fmt.Sprintf("share of %s points spent on the line", ol.RedeemedPoints)})
		}
		for _, acc := range ol.Accruals {
			_, prog, err := programOf(acc.Card)
			if err != nil {
				return ReturnResult{}, err
			}
			a := cumShare(acc.Points.d, after, ol.Qty, prog.PointRounding)
			b := cumShare(acc.Points.d, p, ol.Qty, prog.PointRounding)
			v := a.Sub(b)
			if v.IsZero() {
				continue
			}
			lr.Reversed = append(lr.Reversed, LineAccrual{Card: acc.Card, Points: Points{v}})
			if _, seen := reversed[acc.Card]; !seen {
				cardOrder = append(cardOrder, acc.Card)
			}
			reversed[acc.Card] = reversed[acc.Card].Add(v)
			ex(Explanation{Code: CodeReturnReverse, Rule: prog.ID + "/accrual", Card: acc.Card, Line: ol.No,
				Points: ptrPoints(Points{v}), Detail: fmt.Sprintf("share of %s points earned on the line", acc.Points)})
		}
		res.Lines = append(res.Lines, lr)
	}
	restoredAfter = restoredAfter.Add(restoredBefore)

	// Card effects: restore first (the restored points can then cover the
	// reversal), then debit.
	states := map[string]*cardReturn{}
	stateOf := func(code string) (*cardReturn, error) {
		if s, ok := states[code]; ok {
			return s, nil
		}
		c, p, err := programOf(code)
		if err != nil {
			return nil, err
		}
		s := &cardReturn{orig: c, prog: p, card: *c}
		s.card.Lots = slices.Clone(c.Lots)
		s.res.Code = code
		s.res.BalanceBefore, _ = balances(c, in.Now)
		states[code] = s
		return s, nil
	}
	var order []string
	if spendCard != nil && restoredAfter.GreaterThan(restoredBefore) {
		s, err := stateOf(spendCard.Code)
		if err != nil {
			return ReturnResult{}, err
		}
		order = append(order, spendCard.Code)
		s.restore(orig.Redemption.LotsConsumed, restoredBefore, restoredAfter)
		for _, u := range s.res.LotsRestored {
			ex(Explanation{Code: CodeReturnRestoreLot, Rule: spendProg.ID + "/redemption", Card: s.res.Code, Points: ptrPoints(u.Points),
				Detail: fmt.Sprintf("restored to lot %s with its original expiry", u.LotID)})
		}
	}
	available := refundTotal
	for _, code := range cardOrder {
		s, err := stateOf(code)
		if err != nil {
			return ReturnResult{}, err
		}
		if !slices.Contains(order, code) {
			order = append(order, code)
		}
		rest := s.debit(reversed[code], orig.CheckID, in.Now)
		for _, u := range s.res.LotsDebited {
			ex(Explanation{Code: CodeReturnDebitLot, Rule: s.prog.ID + "/accrual", Card: code, Points: ptrPoints(u.Points),
				Detail: fmt.Sprintf("taken back from lot %s", u.LotID)})
		}
		if rest.IsPositive() {
			available = s.negative(rest, available, ex)
		}
	}
	for _, code := range order {
		s := states[code]
		s.res.BalanceAfter, _ = balances(&s.card, in.Now)
		res.Cards = append(res.Cards, s.res)
		res.Withheld = res.Withheld.Add(s.res.Withheld)
	}
	res.Refund = refundTotal.Sub(res.Withheld)
	return res, nil
}

// cardReturn is the working state of one card during a return.
type cardReturn struct {
	orig *Card
	prog *Program
	card Card // copy with lots updated as the return proceeds
	res  ReturnCardResult
}

// restore gives back spent points to the lots they came from. The
// cumulative restored amount is laid over the consumed lots from the last
// consumed (latest-expiring) back; this return's share per lot is the
// difference between the layouts after and before it.
func (s *cardReturn) restore(consumed []LotUse, before, after decimal.Decimal) {
	lay := func(total decimal.Decimal) []decimal.Decimal {
		out := make([]decimal.Decimal, len(consumed))
		for i := len(consumed) - 1; i >= 0 && total.IsPositive(); i-- {
			out[i] = decimal.Min(total, consumed[i].Points.d)
			total = total.Sub(out[i])
		}
		return out
	}
	a, b := lay(after), lay(before)
	for i := len(consumed) - 1; i >= 0; i-- {
		d := a[i].Sub(b[i])
		if !d.IsPositive() {
			continue
		}
		id := consumed[i].LotID
		s.res.LotsRestored = append(s.res.LotsRestored, LotUse{LotID: id, Points: Points{d}})
		s.res.Restored = s.res.Restored.Add(Points{d})
		if j := slices.IndexFunc(s.card.Lots, func(l Lot) bool { return l.ID == id }); j >= 0 {
			s.card.Lots[j].Remaining = s.card.Lots[j].Remaining.Add(Points{d})
		} else {
			// The store did not load the (fully spent) lot: count the
			// points as active and never-expiring for the balance.
			s.card.Lots = append(s.card.Lots, Lot{ID: id, Points: Points{d}, Remaining: Points{d}})
		}
	}
}

// debit takes back v points: the check's own lots first, then active lots
// soonest-expiring first, then not-yet-active lots. It returns what the
// balance could not cover.
func (s *cardReturn) debit(v decimal.Decimal, checkID string, now time.Time) decimal.Decimal {
	s.res.Reversed = s.res.Reversed.Add(Points{v})
	lots := s.card.Lots
	var own, active, pending []int
	for i := range lots {
		l := &lots[i]
		switch {
		case !l.Remaining.IsPositive() || expired(l, now):
		case checkID != "" && l.CheckID == checkID:
			own = append(own, i)
		case lotActive(l, now):
			active = append(active, i)
		default:
			pending = append(pending, i)
		}
	}
	sortLotsForSpending(active, lots)
	sortLotsForSpending(pending, lots)
	for _, i := range slices.Concat(own, active, pending) {
		if !v.IsPositive() {
			break
		}
		take := decimal.Min(v, lots[i].Remaining.d)
		lots[i].Remaining = Points{lots[i].Remaining.d.Sub(take)}
		v = v.Sub(take)
		s.res.LotsDebited = append(s.res.LotsDebited, LotUse{LotID: lots[i].ID, Points: Points{take}})
	}
	return v
}

// negative applies the negative-balance policy to rest, the reversed points
// the balance could not cover. available is the money refund not yet
// withheld; the updated figure is returned.
func (s *cardReturn) negative(rest decimal.Decimal, available Money, ex func(Explanation)) Money {
	p := s.prog
	rule := p.ID + "/negative_balance"
	debt := func(d decimal.Decimal) {
		if !d.IsPositive() {
			return
		}
		s.res.DebtAdded = s.res.DebtAdded.Add(Points{d})
		s.card.Debt = s.card.Debt.Add(Points{d})
		ex(Explanation{Code: CodeReturnDebt, Rule: rule, Card: s.res.Code, Points: ptrPoints(Points{d}),
			Detail: fmt.Sprintf("already spent: balance goes negative by %s (policy %s)", Points{d}, p.NegativeBalance.Mode)})
	}
	writeOff := func(d decimal.Decimal) {
		if !d.IsPositive() {
			return
		}
		s.res.WrittenOff = s.res.WrittenOff.Add(Points{d})
		ex(Explanation{Code: CodeReturnWriteOff, Rule: rule, Card: s.res.Code, Points: ptrPoints(Points{d}),
			Detail: fmt.Sprintf("already spent: %s points written off (policy %s)", Points{d}, modeOrDefault(p.NegativeBalance.Mode))})
	}
	switch p.NegativeBalance.Mode {
	case NegativeAllow:
		debt(rest)
	case NegativeLimit:
		room := p.NegativeBalance.Limit.d.Sub(s.card.Debt.d)
		if room.IsNegative() {
			room = decimal.Zero
		}
		d := decimal.Min(rest, room)
		debt(d)
		writeOff(rest.Sub(d))
	case NegativeDeductRefund:
		// Rounding: the value of the uncovered points, UP to the kopeck, is
		// kept from the refund; if the refund is too small, the points the
		// remaining money cannot cover are written off.
		want := Money{rest.Mul(p.PointValue.d).RoundUp(2)}
		w := MinMoney(want, available)
		if w.IsPositive() {
			s.res.Withheld = s.res.Withheld.Add(w)
			ex(Explanation{Code: CodeReturnWithheld, Rule: rule, Card: s.res.Code, Money: ptrMoney(w), Points: ptrPoints(Points{rest}),
				Detail: fmt.Sprintf("%s already-spent points × %s withheld from the refund, up to the kopeck", Points{rest}, p.PointValue)})
		}
		if w.Cmp(want) < 0 {
			covered := pointsForMoney(w, p)
			writeOff(rest.Sub(covered.d))
		}
		available = available.Sub(w)
	default:
		writeOff(rest)
	}
	return available
}

func modeOrDefault(m NegativeMode) NegativeMode {
	if m == "" {
		return NegativeForbid
	}
	return m
}

// share is x × part / whole, exact when part equals whole.
func share(x decimal.Decimal, part, whole Qty) decimal.Decimal {
	switch {
	case !part.IsPositive():
		return decimal.Zero
	case part.Cmp(whole) == 0:
		return x
	}
	return x.Mul(part.d).DivRound(whole.d, 16)
}

// cumShare is share rounded by a point rule.
func cumShare(x decimal.Decimal, part, whole Qty, r Rounding) decimal.Decimal {
	return r.Apply(share(x, part, whole))
}

// sumReturnLines totals quantities per line number, checking each names an
// original line and never exceeds what was sold.
func sumReturnLines(rl []ReturnLine, byNo map[int]*LineResult) (map[int]Qty, error) {
	out := make(map[int]Qty, len(rl))
	for _, r := range rl {
		ol, ok := byNo[r.No]
		if !ok {
			return nil, fmt.Errorf("line %d not on the original check: %w", r.No, ErrInvalidInput)
		}
		if !r.Qty.IsPositive() {
			return nil, fmt.Errorf("line %d: returned quantity %s must be positive: %w", r.No, r.Qty, ErrInvalidInput)
		}
		out[r.No] = out[r.No].Add(r.Qty)
		if out[r.No].Cmp(ol.Qty) > 0 {
			return nil, fmt.Errorf("line %d: %s returned of %s sold: %w", r.No, out[r.No], ol.Qty, ErrReturnExceedsSale)
		}
	}
	return out, nil
}
