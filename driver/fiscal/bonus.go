package fiscal

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// BonusMode selects how redeemed points appear on the receipt (fiscal-protocol.md §10.2).
type BonusMode int

const (
	// DiscountMode (default, FNS letter of 30.04.2021): points lower 1079/1043 of the lines.
	DiscountMode BonusMode = iota
	// CounterProvisionMode: lines at full price, the points' value paid as payment 16 (tag 1217).
	CounterProvisionMode
)

// ParseBonusMode reads "discount" or "counter_provision".
func ParseBonusMode(s string) (BonusMode, error) {
	switch s {
	case "", "discount":
		return DiscountMode, nil
	case "counter_provision":
		return CounterProvisionMode, nil
	}
	return 0, fmt.Errorf("bonus mode %q: must be discount or counter_provision", s)
}

func (m BonusMode) String() string {
	if m == CounterProvisionMode {
		return "counter_provision"
	}
	return "discount"
}

// PlainLine is a basket line at full price, before any points.
type PlainLine struct {
	Name       string
	Qty        Qty
	Price      Money // full unit price
	Sum        Money // full line sum; 0 means Price × Qty rounded half-up to the kopeck
	VAT        VAT
	Method     byte
	Subject    byte
	Measure    byte
	Department byte
}

// LoyaltyInfo is what the receipt shows about the card (tag 1084 and text lines).
type LoyaltyInfo struct {
	TagName string // 1085; default «Бонусная карта»
	Card    string // card number; only its last 4 digits are printed
	Spent   decimal.Decimal
	Earned  decimal.Decimal
	Balance decimal.Decimal
}

// DefaultLoyaltyTagName is the 1085 name unless the programme configures another.
const DefaultLoyaltyTagName = "Бонусная карта"

// BonusCheck is the input of BuildReceipt.
type BonusCheck struct {
	ID        string
	Kind      Kind // default Sale
	Lines     []PlainLine
	Redeemed  []Money // rouble value of points per line, kopeck-exact, as the loyalty engine allocated it
	Mode      BonusMode
	Money     Payments // what the buyer pays in money (CounterProvided is ignored)
	Loyalty   *LoyaltyInfo
	TaxSystem byte
	Cashier   string
}

// BuildReceipt turns a basket with per-line redeemed amounts into a receipt
// that satisfies the FFD arithmetic:
//   - DiscountMode: each line's sum is reduced by its redeemed amount; when the
//     new sum is not price × quantity in whole kopecks, the line is split into
//     two lines whose prices differ by 1 kop (a weighed line keeps one line if
//     the ±1 kop tolerance holds);
//   - CounterProvisionMode: full prices, Σ redeemed paid as 1217;
//   - points covering the whole check (either mode): every line at 0 and a
//     zero-total receipt (letters of 30.04.2021 and 15.09.2023).
func BuildReceipt(in BonusCheck) (Receipt, error) {
	r := Receipt{ID: in.ID, Kind: in.Kind, TaxSystem: in.TaxSystem, Cashier: in.Cashier}
	if r.Kind == 0 {
		r.Kind = Sale
	}
	if len(in.Redeemed) != 0 && len(in.Redeemed) != len(in.Lines) {
		return r, fmt.Errorf("receipt %s: %d redeemed amounts for %d lines", in.ID, len(in.Redeemed), len(in.Lines))
	}
	full := make([]Line, len(in.Lines))
	red := make([]Money, len(in.Lines))
	var total, points Money
	for i, pl := range in.Lines {
		l := Line{Name: pl.Name, Qty: pl.Qty, Price: pl.Price, Sum: pl.Sum, VAT: pl.VAT, Method: pl.Method,
			Subject: pl.Subject, Measure: pl.Measure, Department: pl.Department}
		if l.Qty <= 0 || l.Qty > MaxQty || l.Price < 0 || l.Price > MaxMoney {
			return r, fmt.Errorf("receipt %s: line %d %q: quantity %s or price %s outside the device limits", in.ID, i+1, pl.Name, l.Qty, l.Price)
		}
		if l.Sum == 0 {
			s, ok := mulQty(l.Price, l.Qty)
			if !ok {
				return r, fmt.Errorf("receipt %s: line %d %q: %s × %s is over the device maximum %s", in.ID, i+1, pl.Name, l.Price, l.Qty, MaxMoney)
			}
			l.Sum = s
		}
		full[i] = l
		if len(in.Redeemed) > 0 {
			red[i] = in.Redeemed[i]
		}
		if red[i] < 0 || red[i] > l.Sum {
			return r, fmt.Errorf("receipt %s: line %d %q: redeemed %s outside 0…%s", in.ID, i+1, pl.Name, red[i], l.Sum)
		}
		total += l.Sum
		points += red[i]
	}
	money := in.Money
	money.CounterProvided = 0
	switch {
	case points > 0 && points == total:
		// 100 % points: everything "after discount" is zero; no money changes hands.
		for _, l := range full {
			l.Price, l.Sum = 0, 0
			r.Lines = append(r.Lines, l)
		}
		money = Payments{}
	case in.Mode == CounterProvisionMode:
		r.Lines = full
		money.CounterProvided = points
	default:
		for i, l := range full {
			r.Lines = append(r.Lines, discountLine(l, l.Sum-red[i])...)
		}
	}
	r.Payments = money
	if in.Loyalty != nil {
		addLoyalty(&r, in, total, points)
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

// mulRound is mulQty for products known to be in range (discountLine's
// parts are never above the line's sum).
func mulRound(p Money, q Qty) Money {
	m, _ := mulQty(p, q)
	return m
}

// discountLine gives line l the new sum s with a price that satisfies
// 1043 = 1079 × 1023 (± 1 kop). For s = p·Q + rest it splits off the rest at
// price p+1: whole quantities split exactly (r units at p+1, n−r at p).
func discountLine(l Line, s Money) []Line {
	q := int64(l.Qty)
	if s == 0 {
		l.Price, l.Sum = 0, 0
		return []Line{l}
	}
	p := int64(s) * 1_000_000 / q    // floor
	rest := int64(s)*1_000_000 - p*q // in millionths of a unit at 1 kop each
	if rest == 0 {
		l.Price, l.Sum = Money(p), s
		return []Line{l}
	}
	if !l.Qty.IsWhole() {
		// A weighed line: keep it whole if the rounded price is within ± 1 kop.
		pr := Money((int64(s)*1_000_000*2/q + 1) / 2) // half-up
		if d := LineDeviation(pr, l.Qty, s); d <= 1_000_000 && d >= -1_000_000 {
			l.Price, l.Sum = pr, s
			return []Line{l}
		}
	}
	a, b := l, l
	a.Qty, a.Price = Qty(q-rest), Money(p)
	a.Sum = mulRound(a.Price, a.Qty)
	b.Qty, b.Price = Qty(rest), Money(p+1)
	b.Sum = s - a.Sum
	return []Line{a, b}
}

// MaskCard keeps the last four characters: "*1234".
func MaskCard(card string) string {
	r := []rune(strings.TrimSpace(card))
	if len(r) > 4 {
		r = r[len(r)-4:]
	}
	return "*" + string(r)
}

func addLoyalty(r *Receipt, in BonusCheck, total, points Money) {
	li := in.Loyalty
	name := li.TagName
	if name == "" {
		name = DefaultLoyaltyTagName
	}
	card := MaskCard(li.Card)
	r.Loyalty = &UserRequisite{Name: name, Value: fmt.Sprintf("%s списано %s начислено %s баланс %s",
		card, li.Spent.String(), li.Earned.String(), li.Balance.String())}
	r.Text = append(r.Text, name+" "+card)
	if points > 0 {
		if in.Mode == DiscountMode || points == total {
			r.Text = append(r.Text, "Сумма без скидки: "+total.String())
		}
		r.Text = append(r.Text, fmt.Sprintf("Оплачено баллами: %s (%s руб.)", li.Spent.String(), points))
	}
	r.Text = append(r.Text, "Начислено баллов: "+li.Earned.String(), "Баланс баллов: "+li.Balance.String())
}
