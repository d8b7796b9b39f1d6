// Package fiscal is the protocol-free model of a fiscal receipt (54-FZ, FFD 1.2)
// and the small interface the rest of the agent uses to print one. Protocol
// drivers (shtrih) live in sub-packages; this package knows no bytes.
package fiscal

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/shopspring/decimal"
)

// Money is an amount in kopecks. Fiscal tags are whole kopecks, so the model
// never holds fractions; conversions from decimal state their rounding.
type Money int64

// String formats as roubles with two decimals: 399.90.
func (m Money) String() string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%02d", sign, m/100, m%100)
}

// MoneyFromDecimal converts roubles to kopecks. It refuses sub-kopeck amounts
// instead of rounding: the caller's allocation must already be kopeck-exact.
func MoneyFromDecimal(d decimal.Decimal) (Money, error) {
	k := d.Shift(2)
	if !k.IsInteger() {
		return 0, fmt.Errorf("amount %s is not a whole number of kopecks", d)
	}
	return Money(k.IntPart()), nil
}

// Decimal returns the amount in roubles.
func (m Money) Decimal() decimal.Decimal { return decimal.New(int64(m), -2) }

// Qty is a quantity in millionths of the unit (the FF46 encoding): 1 pc = 1 000 000.
type Qty int64

// Limits of the protocol's fixed-width fields: money is 5 bytes and at most
// 9 999 999 999 kop, an FF46 quantity 6 bytes.
const (
	MaxMoney Money = 9_999_999_999
	MaxQty   Qty   = 1<<48 - 1
)

// Units returns a Qty of n whole units.
func Units(n int64) Qty { return Qty(n * 1_000_000) }

// IsWhole reports whether q is a whole number of units.
func (q Qty) IsWhole() bool { return q%1_000_000 == 0 }

func (q Qty) String() string { return decimal.New(int64(q), -6).String() }

// VAT is the FFD tag 1199 value of a line's VAT rate.
type VAT byte

// Tag 1199 values.
const (
	VAT20     VAT = 1
	VAT10     VAT = 2
	VAT20_120 VAT = 3
	VAT10_110 VAT = 4
	VAT0      VAT = 5
	VATNone   VAT = 6
	VAT5      VAT = 7
	VAT7      VAT = 8
	VAT5_105  VAT = 9
	VAT7_107  VAT = 10
)

// Kind is the settlement sign of the receipt (tag 1054).
type Kind byte

// Tag 1054 values.
const (
	Sale       Kind = 1 // приход
	SaleReturn Kind = 2 // возврат прихода
	Buy        Kind = 3 // расход
	BuyReturn  Kind = 4 // возврат расхода
)

func (k Kind) String() string {
	switch k {
	case Sale:
		return "sale"
	case SaleReturn:
		return "sale return"
	case Buy:
		return "buy"
	case BuyReturn:
		return "buy return"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Payment-method sign (tag 1214) and subject sign (tag 1212) used by retail.
const (
	MethodFullPayment byte = 4
	SubjectGoods      byte = 1
)

// Line is one item of the receipt (STLV 1059).
type Line struct {
	Name       string // 1030
	Qty        Qty    // 1023
	Price      Money  // 1079, unit price after discounts
	Sum        Money  // 1043, line cost after discounts
	VAT        VAT    // 1199
	Method     byte   // 1214; 0 means 4 (full payment)
	Subject    byte   // 1212; 0 means 1 (goods)
	Measure    byte   // 2108; 0 = pieces
	Department byte   // device department, 0 means 1
}

// Payments are the amounts by kind. Cash is what the buyer tendered; the
// device returns change, so tag 1031 is Cash minus change.
type Payments struct {
	Cash            Money // 1031
	Electronic      Money // 1081
	Prepayment      Money // 1215
	Postpayment     Money // 1216
	CounterProvided Money // 1217, counter-provision (bonus points at full price)
}

// UserRequisite is tag 1084: a name (1085, ≤ 64) and a value (1086, ≤ 256).
type UserRequisite struct {
	Name  string
	Value string
}

// Receipt is everything needed to fiscalise one check.
type Receipt struct {
	ID           string // caller's id (journal); printed as a text line when PrintID is set
	Kind         Kind
	Lines        []Line
	Payments     Payments
	TaxSystem    byte // tag 1055 bit number: 0 ОСН, 1 УСН доход, …
	Cashier      string
	CashierINN   string
	BuyerContact string         // 1008
	Loyalty      *UserRequisite // 1084
	Text         []string       // non-fiscal lines printed before the close
}

// Total is tag 1020 = Σ 1043.
func (r *Receipt) Total() Money {
	var t Money
	for _, l := range r.Lines {
		t += l.Sum
	}
	return t
}

// Amounts are the receipt-level sum tags as the FN will record them.
type Amounts struct {
	Total, Cash, Electronic, Prepayment, Postpayment, CounterProvided, Change Money
}

// ErrArithmetic marks a receipt that breaks the FFD sum rules.
var ErrArithmetic = errors.New("receipt breaks FFD arithmetic")

// Amounts checks the FFD arithmetic and returns the tags:
// 1031 + 1081 + 1215 + 1216 + 1217 = 1020 = Σ1043, each 1043 = 1079 × 1023 ± 1 kop.
// Only cash may exceed what is due (the excess is change).
func (r *Receipt) Amounts() (Amounts, error) {
	a := Amounts{Total: r.Total()}
	p := r.Payments
	for i, l := range r.Lines {
		if l.Qty <= 0 || l.Qty > MaxQty || l.Price < 0 || l.Price > MaxMoney || l.Sum < 0 || l.Sum > MaxMoney {
			return a, fmt.Errorf("%w: line %d %q: quantity %s, price %s, sum %s", ErrArithmetic, i+1, l.Name, l.Qty, l.Price, l.Sum)
		}
		if !withinKop(l.Price, l.Qty, l.Sum) {
			return a, fmt.Errorf("%w: line %d %q: 1043 %s is not 1079 %s × 1023 %s ± 1 kop", ErrArithmetic, i+1, l.Name, l.Sum, l.Price, l.Qty)
		}
	}
	if a.Total > MaxMoney {
		return a, fmt.Errorf("%w: total %s over the device maximum %s", ErrArithmetic, a.Total, MaxMoney)
	}
	for _, m := range []Money{p.Cash, p.Electronic, p.Prepayment, p.Postpayment, p.CounterProvided} {
		if m < 0 || m > MaxMoney {
			return a, fmt.Errorf("%w: payment %s outside 0…%s", ErrArithmetic, m, MaxMoney)
		}
	}
	nonCash := p.Electronic + p.Prepayment + p.Postpayment + p.CounterProvided
	if nonCash > a.Total {
		return a, fmt.Errorf("%w: non-cash payments %s exceed total %s", ErrArithmetic, nonCash, a.Total)
	}
	if nonCash+p.Cash < a.Total {
		return a, fmt.Errorf("%w: payments %s less than total %s", ErrArithmetic, nonCash+p.Cash, a.Total)
	}
	a.Cash = a.Total - nonCash
	a.Change = p.Cash - a.Cash
	a.Electronic, a.Prepayment, a.Postpayment, a.CounterProvided = p.Electronic, p.Prepayment, p.Postpayment, p.CounterProvided
	return a, nil
}

// LineDeviation is price × qty − sum in millionths of a kopeck (exact integer
// arithmetic while price × qty fits in int64; Amounts checks with 128 bits).
func LineDeviation(price Money, qty Qty, sum Money) int64 {
	return int64(price)*int64(qty) - int64(sum)*1_000_000
}

// withinKop reports |price × qty − sum × 10⁶| ≤ 10⁶ for non-negative
// arguments, exactly: the products need up to 82 bits.
func withinKop(price Money, qty Qty, sum Money) bool {
	ph, pl := bits.Mul64(uint64(price), uint64(qty))
	sh, sl := bits.Mul64(uint64(sum), 1_000_000)
	// d = |p − s| as a 128-bit number.
	dl, borrow := bits.Sub64(pl, sl, 0)
	dh, _ := bits.Sub64(ph, sh, borrow)
	if ph < sh || ph == sh && pl < sl {
		dl, borrow = bits.Sub64(sl, pl, 0)
		dh, _ = bits.Sub64(sh, ph, borrow)
	}
	return dh == 0 && dl <= 1_000_000
}

// mulQty is price × qty rounded half-up to the kopeck (the device's rule for
// FF46 with the sum "not given"); ok is false above MaxMoney.
func mulQty(p Money, q Qty) (Money, bool) {
	hi, lo := bits.Mul64(uint64(p), uint64(q))
	lo, carry := bits.Add64(lo, 500_000, 0)
	hi += carry
	if hi >= 1_000_000 {
		return 0, false // quotient would not fit 64 bits
	}
	v, _ := bits.Div64(hi, lo, 1_000_000)
	if v > uint64(MaxMoney) {
		return 0, false
	}
	return Money(v), true
}

// Validate checks the receipt before any byte goes to a printer.
func (r *Receipt) Validate() error {
	switch r.Kind {
	case Sale, SaleReturn, Buy, BuyReturn:
	default:
		return fmt.Errorf("receipt %s: unknown kind %d", r.ID, r.Kind)
	}
	if len(r.Lines) == 0 {
		return fmt.Errorf("receipt %s: no lines", r.ID)
	}
	for i, l := range r.Lines {
		if strings.TrimSpace(l.Name) == "" {
			return fmt.Errorf("receipt %s: line %d has no name", r.ID, i+1)
		}
	}
	if r.Loyalty != nil && (len([]rune(r.Loyalty.Name)) > 64 || len([]rune(r.Loyalty.Value)) > 256) {
		return fmt.Errorf("receipt %s: tag 1084 name > 64 or value > 256 characters", r.ID)
	}
	if _, err := r.Amounts(); err != nil {
		return fmt.Errorf("receipt %s: %w", r.ID, err)
	}
	return nil
}
