package checkout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/shopspring/decimal"

	"tillagent/internal/jsonscan"
)

// Money is an amount in roubles with exactly two decimal places (kopecks).
// The zero value is 0.00. Money never holds fractions of a kopeck: every
// constructor and arithmetic helper that could produce one names its rounding.
// JSON form is a decimal string, e.g. "123.45".
type Money struct{ d decimal.Decimal }

// Points is an amount of loyalty points. How many decimal places points carry
// is a per-program setting (see Rounding); the type itself does not round.
// JSON form is a decimal string, e.g. "120" or "12.5".
type Points struct{ d decimal.Decimal }

// Percent is a percentage: "5" means 5 %. JSON form is a decimal string.
type Percent struct{ d decimal.Decimal }

// Qty is a line quantity: pieces ("2") or weight/volume ("0.350"). JSON form
// is a decimal string.
type Qty struct{ d decimal.Decimal }

// Factor is a dimensionless multiplier, e.g. a promotion's "2" or "1.5".
// JSON form is a decimal string.
type Factor struct{ d decimal.Decimal }

var (
	kopScale = int32(2)
)

// ---- Money ----

// ParseMoney parses a rouble amount such as "123.45". More than two decimal
// places is an error rather than a silent rounding.
func ParseMoney(s string) (Money, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Money{}, fmt.Errorf("parse money %q: %w", s, err)
	}
	if !d.Equal(d.Truncate(kopScale)) {
		return Money{}, fmt.Errorf("parse money %q: more than 2 decimal places", s)
	}
	return Money{d.Truncate(kopScale)}, nil
}

// MustMoney is ParseMoney for constants and tests; it panics on error.
func MustMoney(s string) Money {
	m, err := ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Kopecks returns the amount as an integer number of kopecks (exact).
func Kopecks(k int64) Money { return Money{decimal.New(k, -2)} }

// MoneyHalfUp converts an arbitrary decimal to Money, rounding half away from
// zero to the kopeck. Used for line sums (price × qty) and percent discounts.
func MoneyHalfUp(d decimal.Decimal) Money { return Money{d.Round(kopScale)} }

// MoneyDown converts an arbitrary decimal to Money, rounding toward zero to the
// kopeck. Used where the customer's or the chain's limit must not be exceeded
// (redemption value of points, redemption caps).
func MoneyDown(d decimal.Decimal) Money { return Money{d.Truncate(kopScale)} }

// Decimal returns the underlying value.
func (m Money) Decimal() decimal.Decimal { return m.d }

// Kopecks returns the amount in kopecks. Money always holds whole kopecks.
// It panics when the amount does not fit int64 (beyond ±92 233 720 368
// 547 758.07 roubles) instead of wrapping; amounts in a Result never do
// (Quote bounds the check). Use CheckedKopecks for unvalidated amounts.
func (m Money) Kopecks() int64 {
	// Fast path without allocating: Money almost always holds exponent −2
	// (or 0 for whole roubles parsed from "100").
	if m.d.NumDigits() <= 16 {
		switch m.d.Exponent() {
		case -2:
			return m.d.CoefficientInt64()
		case -1:
			return m.d.CoefficientInt64() * 10
		case 0:
			return m.d.CoefficientInt64() * 100
		}
	}
	return mustInt(m.d.Shift(2), "money in kopecks")
}

// CheckedKopecks is Kopecks with an error wrapping ErrOutOfRange when the
// amount does not fit int64.
func (m Money) CheckedKopecks() (int64, error) {
	k, ok := intPart(m.d.Shift(2))
	if !ok {
		return 0, fmt.Errorf("money %s in kopecks: %w", m, errRange)
	}
	return k, nil
}

func (m Money) Add(o Money) Money            { return Money{m.d.Add(o.d)} }
func (m Money) Sub(o Money) Money            { return Money{m.d.Sub(o.d)} }
func (m Money) Neg() Money                   { return Money{m.d.Neg()} }
func (m Money) Cmp(o Money) int              { return m.d.Cmp(o.d) }
func (m Money) Equal(o Money) bool           { return m.d.Equal(o.d) }
func (m Money) IsZero() bool                 { return m.d.IsZero() }
func (m Money) IsNegative() bool             { return m.d.IsNegative() }
func (m Money) IsPositive() bool             { return m.d.IsPositive() }
func (m Money) String() string               { return m.d.StringFixed(kopScale) }
func (m Money) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// MinMoney returns the smaller of a and b.
func MinMoney(a, b Money) Money {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// MaxMoney returns the larger of a and b.
func MaxMoney(a, b Money) Money {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

func (m *Money) UnmarshalJSON(b []byte) error {
	s, err := jsonDecimalText(b)
	if err != nil {
		return fmt.Errorf("money: %w", err)
	}
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ---- Points ----

// ParsePoints parses a point amount such as "120" or "12.5".
func ParsePoints(s string) (Points, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Points{}, fmt.Errorf("parse points %q: %w", s, err)
	}
	return Points{d}, nil
}

// MustPoints is ParsePoints for constants and tests; it panics on error.
func MustPoints(s string) Points {
	p, err := ParsePoints(s)
	if err != nil {
		panic(err)
	}
	return p
}

// PointsOf wraps a decimal as Points without rounding.
func PointsOf(d decimal.Decimal) Points { return Points{d} }

// IntPoints returns n whole points.
func IntPoints(n int64) Points { return Points{decimal.NewFromInt(n)} }

func (p Points) Decimal() decimal.Decimal { return p.d }
func (p Points) Add(o Points) Points      { return Points{p.d.Add(o.d)} }
func (p Points) Sub(o Points) Points      { return Points{p.d.Sub(o.d)} }
func (p Points) Neg() Points              { return Points{p.d.Neg()} }
func (p Points) Cmp(o Points) int         { return p.d.Cmp(o.d) }
func (p Points) Equal(o Points) bool      { return p.d.Equal(o.d) }
func (p Points) IsZero() bool             { return p.d.IsZero() }
func (p Points) IsNegative() bool         { return p.d.IsNegative() }
func (p Points) IsPositive() bool         { return p.d.IsPositive() }

// String prints the value without trailing zeros beyond what it holds, e.g.
// "120" or "12.5".
func (p Points) String() string               { return p.d.String() }
func (p Points) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// AppendString appends String's text to b. A value of at most 18 digits
// and up to 18 places (every amount a program holds) is written with
// strconv, not through big.Int's conversion: a first-load page writes
// 50,000 of them, and String was a third of encoding it.
func (p Points) AppendString(b []byte) []byte {
	exp := p.d.Exponent()
	if exp > 0 || exp < -18 || p.d.NumDigits() > 18 {
		return append(b, p.d.String()...)
	}
	v := p.d.CoefficientInt64()
	if exp == 0 {
		return strconv.AppendInt(b, v, 10)
	}
	if v < 0 {
		b, v = append(b, '-'), -v
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], uint64(v), 10)
	places := int(-exp)
	intLen := len(digits) - places
	if intLen > 0 {
		b = append(b, digits[:intLen]...)
		digits = digits[intLen:]
	} else {
		b = append(b, '0')
	}
	// The fraction: the leading zeros it needs, then its digits, trailing
	// zeros dropped; nothing (no point) when all are zero.
	frac := bytes.TrimRight(digits, "0")
	if len(frac) == 0 {
		return b
	}
	b = append(b, '.')
	for range places - len(digits) {
		b = append(b, '0')
	}
	return append(b, frac...)
}

func (p *Points) UnmarshalJSON(b []byte) error {
	s, err := jsonDecimalText(b)
	if err != nil {
		return fmt.Errorf("points: %w", err)
	}
	v, err := ParsePoints(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MinPoints returns the smaller of a and b.
func MinPoints(a, b Points) Points {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// MaxPoints returns the larger of a and b.
func MaxPoints(a, b Points) Points {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

// ---- Percent, Qty, Factor ----

// ParsePercent parses "5" or "2.5" (meaning 5 % and 2.5 %).
func ParsePercent(s string) (Percent, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Percent{}, fmt.Errorf("parse percent %q: %w", s, err)
	}
	return Percent{d}, nil
}

// MustPercent is ParsePercent for constants and tests; it panics on error.
func MustPercent(s string) Percent {
	p, err := ParsePercent(s)
	if err != nil {
		panic(err)
	}
	return p
}

func (p Percent) Decimal() decimal.Decimal { return p.d }

// Fraction returns the percent as a fraction: 5 % → 0.05.
func (p Percent) Fraction() decimal.Decimal    { return p.d.Shift(-2) }
func (p Percent) IsZero() bool                 { return p.d.IsZero() }
func (p Percent) Cmp(o Percent) int            { return p.d.Cmp(o.d) }
func (p Percent) String() string               { return p.d.String() }
func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

func (p *Percent) UnmarshalJSON(b []byte) error {
	s, err := jsonDecimalText(b)
	if err != nil {
		return fmt.Errorf("percent: %w", err)
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParseQty parses a quantity such as "2" or "0.350".
func ParseQty(s string) (Qty, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Qty{}, fmt.Errorf("parse qty %q: %w", s, err)
	}
	return Qty{d}, nil
}

// MustQty is ParseQty for constants and tests; it panics on error.
func MustQty(s string) Qty {
	q, err := ParseQty(s)
	if err != nil {
		panic(err)
	}
	return q
}

func (q Qty) Decimal() decimal.Decimal     { return q.d }
func (q Qty) Add(o Qty) Qty                { return Qty{q.d.Add(o.d)} }
func (q Qty) Sub(o Qty) Qty                { return Qty{q.d.Sub(o.d)} }
func (q Qty) Cmp(o Qty) int                { return q.d.Cmp(o.d) }
func (q Qty) IsZero() bool                 { return q.d.IsZero() }
func (q Qty) IsPositive() bool             { return q.d.IsPositive() }
func (q Qty) String() string               { return q.d.String() }
func (q Qty) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

func (q *Qty) UnmarshalJSON(b []byte) error {
	s, err := jsonDecimalText(b)
	if err != nil {
		return fmt.Errorf("qty: %w", err)
	}
	v, err := ParseQty(s)
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// ParseFactor parses a multiplier such as "2" or "1.5".
func ParseFactor(s string) (Factor, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Factor{}, fmt.Errorf("parse factor %q: %w", s, err)
	}
	return Factor{d}, nil
}

// MustFactor is ParseFactor for constants and tests; it panics on error.
func MustFactor(s string) Factor {
	f, err := ParseFactor(s)
	if err != nil {
		panic(err)
	}
	return f
}

// One is the neutral Factor.
func One() Factor { return Factor{decimal.NewFromInt(1)} }

func (f Factor) Decimal() decimal.Decimal     { return f.d }
func (f Factor) Mul(o Factor) Factor          { return Factor{f.d.Mul(o.d)} }
func (f Factor) Cmp(o Factor) int             { return f.d.Cmp(o.d) }
func (f Factor) IsZero() bool                 { return f.d.IsZero() }
func (f Factor) String() string               { return f.d.String() }
func (f Factor) MarshalJSON() ([]byte, error) { return json.Marshal(f.String()) }

func (f *Factor) UnmarshalJSON(b []byte) error {
	s, err := jsonDecimalText(b)
	if err != nil {
		return fmt.Errorf("factor: %w", err)
	}
	v, err := ParseFactor(s)
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// jsonDecimalText accepts either a JSON string ("12.50") or a bare JSON number
// (12.50) and returns its text. Strings are the canonical form we emit;
// numbers are accepted because hand-written check files use them.
func jsonDecimalText(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return "", fmt.Errorf("empty value")
	}
	if b[0] == '"' {
		// The usual amount, "12.50", is its own text: no escape to undo.
		sc := jsonscan.New(b)
		if text, _, ok := sc.String(); ok && sc.Pos() == len(b) {
			return string(text), nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// ---- Rounding ----

// RoundingMode names how a value is brought to a given scale.
type RoundingMode string

const (
	// RoundDown truncates toward zero: 12.9 → 12. The default for points.
	RoundDown RoundingMode = "down"
	// RoundHalfUp rounds half away from zero: 12.5 → 13.
	RoundHalfUp RoundingMode = "half_up"
	// RoundUp rounds away from zero: 12.1 → 13.
	RoundUp RoundingMode = "up"
	// RoundHalfEven is banker's rounding: 12.5 → 12, 13.5 → 14.
	RoundHalfEven RoundingMode = "half_even"
)

// Rounding is a per-program rule for points: how many decimal places points
// carry (Scale 0 = whole points, 1 = tenths, …) and the mode used to get
// there. The zero value is whole points rounded down, the default.
type Rounding struct {
	Scale int32        `json:"scale"`
	Mode  RoundingMode `json:"mode,omitempty"`
}

// Apply rounds d to r.Scale decimal places with r.Mode (empty = down).
func (r Rounding) Apply(d decimal.Decimal) decimal.Decimal {
	switch r.Mode {
	case RoundHalfUp:
		return d.Round(r.Scale)
	case RoundUp:
		return d.RoundUp(r.Scale)
	case RoundHalfEven:
		return d.RoundBank(r.Scale)
	default: // RoundDown and "".
		return d.Truncate(r.Scale)
	}
}

// Points rounds a raw point amount by the program's rule.
func (r Rounding) Points(d decimal.Decimal) Points { return Points{r.Apply(d)} }

// Unit is the smallest point step at this scale: 1, 0.1, 0.01, …
func (r Rounding) Unit() decimal.Decimal { return decimal.New(1, -r.Scale) }

// Valid reports whether the rule is usable.
func (r Rounding) Valid() error {
	if r.Scale < 0 || r.Scale > 4 {
		return fmt.Errorf("point rounding scale %d out of range 0..4", r.Scale)
	}
	switch r.Mode {
	case "", RoundDown, RoundHalfUp, RoundUp, RoundHalfEven:
		return nil
	}
	return fmt.Errorf("unknown point rounding mode %q", r.Mode)
}
