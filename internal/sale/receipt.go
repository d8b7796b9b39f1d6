package sale

import (
	"fmt"

	"tillagent/checkout"
	"tillagent/driver/fiscal"
)

// ReceiptOptions are the receipt settings of the till (config receipt.*).
type ReceiptOptions struct {
	BonusMode      fiscal.BonusMode
	LoyaltyTagName string // tag 1085; empty: fiscal.DefaultLoyaltyTagName
	TaxSystem      byte
}

// vatOf maps the replica's VAT code to tag 1199. vat22 is the standard rate
// from 2026; the FFD keeps value 1 for the standard rate.
func vatOf(code string) (fiscal.VAT, error) {
	switch code {
	case "vat20", "vat22":
		return fiscal.VAT20, nil
	case "vat10":
		return fiscal.VAT10, nil
	case "vat7":
		return fiscal.VAT7, nil
	case "vat5":
		return fiscal.VAT5, nil
	case "vat0":
		return fiscal.VAT0, nil
	case "none", "":
		return fiscal.VATNone, nil
	}
	return 0, fmt.Errorf("unknown VAT code %q", code)
}

func kop(m checkout.Money) fiscal.Money { return fiscal.Money(m.Kopecks()) }

// qtyOf converts a quantity to the receipt's millionths; finer quantities
// cannot be fiscalised and are refused, never rounded.
func qtyOf(q checkout.Qty) (fiscal.Qty, error) {
	m := q.Decimal().Shift(6)
	if !m.IsInteger() {
		return 0, fmt.Errorf("quantity %s has more than 6 decimals", q)
	}
	return fiscal.Qty(m.IntPart()), nil
}

// measures are tag 2108's values of the replica's units.
var measures = map[string]byte{"pcs": 0, "g": 10, "kg": 11, "m": 22, "m2": 32, "ml": 40, "l": 41, "m3": 42}

// part is one receipt line before the bonus mode is applied: the line at its
// price after the card discount, and the money paid on it with points.
type part struct {
	line     fiscal.PlainLine
	redeemed fiscal.Money
}

// discounted returns pl with its sum lowered by discount, as one or two
// lines that satisfy 1043 = 1079 × 1023 (fiscal.BuildReceipt splits a line
// whose new sum is not a whole-kopeck price × quantity), and spreads
// redeemed over them, first line first.
func discounted(pl fiscal.PlainLine, discount, redeemed fiscal.Money) ([]part, error) {
	if discount == 0 {
		return []part{{pl, redeemed}}, nil
	}
	r, err := fiscal.BuildReceipt(fiscal.BonusCheck{ID: "discount", Lines: []fiscal.PlainLine{pl},
		Redeemed: []fiscal.Money{discount}, Money: fiscal.Payments{Cash: pl.Sum}})
	if err != nil {
		return nil, err
	}
	var out []part
	for _, l := range r.Lines {
		p := fiscal.PlainLine{Name: l.Name, Qty: l.Qty, Price: l.Price, Sum: l.Sum, VAT: l.VAT,
			Method: l.Method, Subject: l.Subject, Measure: l.Measure, Department: l.Department}
		take := min(redeemed, l.Sum)
		redeemed -= take
		out = append(out, part{p, take})
	}
	if redeemed != 0 {
		return nil, fmt.Errorf("line %q: redeemed exceeds its sum after discount", pl.Name)
	}
	return out, nil
}

// buildReceipt turns parts into the receipt in the configured bonus mode.
// In discount mode the card discount and the points both lower the lines;
// in counter-provision mode only the card discount does, and the points'
// rouble value is paid as tag 1217.
func buildReceipt(id string, kind fiscal.Kind, parts []part, money fiscal.Payments, loyalty *fiscal.LoyaltyInfo, o ReceiptOptions, cashier string) (fiscal.Receipt, error) {
	in := fiscal.BonusCheck{ID: id, Kind: kind, Mode: o.BonusMode, Money: money, Loyalty: loyalty, TaxSystem: o.TaxSystem, Cashier: cashier}
	for _, p := range parts {
		in.Lines = append(in.Lines, p.line)
		in.Redeemed = append(in.Redeemed, p.redeemed)
	}
	r, err := fiscal.BuildReceipt(in)
	if err != nil {
		return r, fmt.Errorf("build receipt %s: %w", id, err)
	}
	// The till's document id on the paper and in the FN's text lines ties
	// the receipt to the journal for support.
	r.Text = append(r.Text, "Чек кассы "+id)
	return r, nil
}

// plainLine is a check line at its full price, as the receipt names it.
func plainLine(l checkout.Line, qty checkout.Qty, sum checkout.Money) (fiscal.PlainLine, error) {
	vat, err := vatOf(l.VAT)
	if err != nil {
		return fiscal.PlainLine{}, fmt.Errorf("line %d: %w", l.No, err)
	}
	q, err := qtyOf(qty)
	if err != nil {
		return fiscal.PlainLine{}, fmt.Errorf("line %d: %w", l.No, err)
	}
	name := l.Name
	if name == "" {
		name = l.ProductID
	}
	measure, ok := measures[checkout.UnitOrDefault(l.Unit)]
	if !ok {
		return fiscal.PlainLine{}, fmt.Errorf("line %d: unknown unit %q", l.No, l.Unit)
	}
	if measure == 0 && !q.IsWhole() {
		return fiscal.PlainLine{}, fmt.Errorf("line %d: product %s is sold by the piece, quantity %s", l.No, l.ProductID, qty)
	}
	return fiscal.PlainLine{Name: name, Qty: q, Price: kop(l.Price), Sum: kop(sum), VAT: vat, Measure: measure}, nil
}

// SaleReceipt is the receipt of a priced check.
func SaleReceipt(check checkout.Check, res checkout.Result, money fiscal.Payments, o ReceiptOptions, cashier string) (fiscal.Receipt, error) {
	if len(check.Lines) != len(res.Lines) {
		return fiscal.Receipt{}, fmt.Errorf("receipt %s: %d check lines, %d priced", res.CheckID, len(check.Lines), len(res.Lines))
	}
	var parts []part
	for i, lr := range res.Lines {
		pl, err := plainLine(check.Lines[i], lr.Qty, lr.Sum)
		if err != nil {
			return fiscal.Receipt{}, fmt.Errorf("receipt %s: %w", res.CheckID, err)
		}
		ps, err := discounted(pl, kop(lr.Discount), kop(lr.Redeemed))
		if err != nil {
			return fiscal.Receipt{}, fmt.Errorf("receipt %s: %w", res.CheckID, err)
		}
		parts = append(parts, ps...)
	}
	return buildReceipt(res.CheckID, fiscal.Sale, parts, money, loyaltyOf(res, o), o, cashier)
}

// loyaltyOf is the 1084 requisite and the printed lines of the customer card.
func loyaltyOf(res checkout.Result, o ReceiptOptions) *fiscal.LoyaltyInfo {
	for _, c := range res.Cards {
		if c.Kind == checkout.KindReferral || c.Kind == checkout.KindDiscount || !(c.CanEarn || c.CanSpend) {
			continue
		}
		return &fiscal.LoyaltyInfo{TagName: o.LoyaltyTagName, Card: c.Code,
			Spent: c.Redeemed.Decimal(), Earned: c.Accrued.Decimal(), Balance: c.BalanceAfter.Decimal()}
	}
	return nil
}

// share is m × num / den, half up to the kopeck: a returned quantity's part
// of a line amount.
func share(m checkout.Money, num, den checkout.Qty) checkout.Money {
	if num.Cmp(den) == 0 {
		return m
	}
	return checkout.MoneyHalfUp(m.Decimal().Mul(num.Decimal()).Div(den.Decimal()))
}

// cumShare is this return's part of a line amount m, taken cumulatively as
// the engine takes the refund: share(m, before+now) − share(m, before), so
// that the returns of a line add up to the line exactly.
func cumShare(m checkout.Money, before, now, whole checkout.Qty) checkout.Money {
	return share(m, before.Add(now), whole).Sub(share(m, before, whole))
}

// Returned is what earlier returns took back from one line of a sale.
type Returned struct {
	Qty      checkout.Qty
	Restored checkout.Points // spent points given back
}

// ReturnReceipt is the sale-return receipt of rr; prev is what earlier
// returns of the sale took per line number. Per returned line the receipt
// carries the returned quantity's share of the line (cumulative, so that the
// returns of a line add up to the sale's line), of which:
//   - the refund is paid back in money (the engine's figure);
//   - the restored points are worth their share of the money they paid on
//     the line, cumulative by points (restored so far / spent on the line);
//     in discount mode they lower the line, in counter-provision mode they
//     are 1217;
//   - the rest lowers the line: the card discount's share, and whatever
//     whole-point rounding keeps back until the line's last return.
//
// Money withheld for spent points (deduct_refund) is taken off the last
// lines' money first and lowers those lines.
func ReturnReceipt(id string, check checkout.Check, original checkout.Result, rr checkout.ReturnResult, prev map[int]Returned,
	refund fiscal.Payments, o ReceiptOptions, cashier string) (fiscal.Receipt, error) {
	byNo := map[int]int{}
	for i, l := range original.Lines {
		byNo[l.No] = i
	}
	type ret struct {
		pl                      fiscal.PlainLine
		discount, points, money fiscal.Money
	}
	rets := make([]ret, 0, len(rr.Lines))
	for _, l := range rr.Lines {
		i, ok := byNo[l.No]
		if !ok || i >= len(check.Lines) {
			return fiscal.Receipt{}, fmt.Errorf("return %s: line %d not in sale %s", id, l.No, original.CheckID)
		}
		ol, before := original.Lines[i], prev[l.No]
		full := cumShare(ol.Sum, before.Qty, l.Qty, ol.Qty)
		pl, err := plainLine(check.Lines[i], l.Qty, full)
		if err != nil {
			return fiscal.Receipt{}, fmt.Errorf("return %s: %w", id, err)
		}
		var points checkout.Money
		if ol.RedeemedPoints.IsPositive() && l.RestoredPoints.IsPositive() {
			spent := ol.RedeemedPoints.Decimal()
			at := func(p checkout.Points) checkout.Money {
				return checkout.MoneyHalfUp(ol.Redeemed.Decimal().Mul(p.Decimal()).Div(spent))
			}
			points = at(before.Restored.Add(l.RestoredPoints)).Sub(at(before.Restored))
		}
		r := ret{pl: pl, points: kop(points), money: kop(l.Refund)}
		r.discount = pl.Sum - r.points - r.money
		if r.discount < 0 { // rounding: the points' value gives way, never the refund
			r.points += r.discount
			r.discount = 0
		}
		if r.points < 0 {
			return fiscal.Receipt{}, fmt.Errorf("return %s: line %q refund %s over its share %s", id, pl.Name, r.money, pl.Sum)
		}
		rets = append(rets, r)
	}
	withheld := kop(rr.Withheld)
	for i := len(rets) - 1; i >= 0 && withheld > 0; i-- {
		take := min(withheld, rets[i].money)
		rets[i].money -= take
		rets[i].discount += take
		withheld -= take
	}
	if withheld > 0 {
		return fiscal.Receipt{}, fmt.Errorf("return %s: withheld %s exceeds the refund", id, rr.Withheld)
	}
	var parts []part
	for _, r := range rets {
		ps, err := discounted(r.pl, r.discount, r.points)
		if err != nil {
			return fiscal.Receipt{}, fmt.Errorf("return %s: %w", id, err)
		}
		parts = append(parts, ps...)
	}
	return buildReceipt(id, fiscal.SaleReturn, parts, refund, nil, o, cashier)
}

// moneyOf converts an API amount to kopecks, refusing fractions of a
// kopeck, negative amounts and amounts no receipt can carry.
func moneyOf(m checkout.Money, what string) (fiscal.Money, error) {
	switch {
	case m.IsNegative():
		return 0, fmt.Errorf("%s: negative amount", what)
	case m.Decimal().Cmp(fiscal.MaxMoney.Decimal()) > 0:
		return 0, fmt.Errorf("%s: over the maximum %s", what, fiscal.MaxMoney)
	}
	v, err := fiscal.MoneyFromDecimal(m.Decimal())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// ReceiptView is a receipt as the API shows it: roubles and quantities as
// decimal strings, tag numbers named.
type ReceiptView struct {
	Kind     string            `json:"kind"`
	Lines    []ReceiptLineView `json:"lines"`
	Total    string            `json:"total"` // 1020
	Payments map[string]string `json:"payments"`
	Loyalty  *ReceiptTag       `json:"loyalty,omitempty"` // 1084
	Text     []string          `json:"text,omitempty"`
	Cashier  string            `json:"cashier,omitempty"`
}

// ReceiptLineView is one receipt line (tags 1030, 1023, 1079, 1043, 1199).
type ReceiptLineView struct {
	Name  string `json:"name"`
	Qty   string `json:"qty"`
	Price string `json:"price"`
	Sum   string `json:"sum"`
	VAT   int    `json:"vat"`
}

// ReceiptTag is a user requisite: 1085 name, 1086 value.
type ReceiptTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// View renders r for the API. Payments list only the kinds used: cash
// (1031, as tendered), electronic (1081), counter_provision (1217).
func View(r fiscal.Receipt) ReceiptView {
	v := ReceiptView{Kind: r.Kind.String(), Total: r.Total().String(), Payments: map[string]string{}, Text: r.Text, Cashier: r.Cashier}
	for _, l := range r.Lines {
		v.Lines = append(v.Lines, ReceiptLineView{Name: l.Name, Qty: l.Qty.String(), Price: l.Price.String(), Sum: l.Sum.String(), VAT: int(l.VAT)})
	}
	for k, m := range map[string]fiscal.Money{"cash": r.Payments.Cash, "electronic": r.Payments.Electronic,
		"prepayment": r.Payments.Prepayment, "postpayment": r.Payments.Postpayment, "counter_provision": r.Payments.CounterProvided} {
		if m != 0 {
			v.Payments[k] = m.String()
		}
	}
	if r.Loyalty != nil {
		v.Loyalty = &ReceiptTag{Name: r.Loyalty.Name, Value: r.Loyalty.Value}
	}
	return v
}
