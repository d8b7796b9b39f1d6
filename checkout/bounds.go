package checkout

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"
)

// Bounds on the input. Validation refuses anything larger with an error
// naming the line (ErrOutOfRange, also ErrInvalidInput), so every amount the
// engine converts to integer kopecks or point steps fits int64 with room to
// spare: a check total of 10^12 kopecks (10 billion roubles) times 10^4
// point steps per kopeck is still far below 9.2 × 10^18. They are variables
// only because Money and Qty cannot be constants: read them, never set them.
var (
	// MaxPrice is the largest unit price: 100 000 000.00 roubles.
	MaxPrice = Kopecks(100_000_000_00)
	// MaxQty is the largest line quantity: 1 000 000 pieces or kg.
	MaxQty = Qty{decimal.NewFromInt(1_000_000)}
	// MaxCheckTotal is the largest check sum before discounts (and so the
	// largest line sum): 10^12 kopecks, 10 000 000 000.00 roubles.
	MaxCheckTotal = Kopecks(maxCheckTotalKop)
	// MaxPointValue is the largest value of one point: 1 000 000.00 roubles.
	MaxPointValue = Kopecks(1_000_000_00)
	// MaxCheckPoints is the most points one check may accrue or redeem on a
	// card, one accrual rule may give per unit or check, and one journal
	// entry may carry (head office refuses entries beyond it: wire.MaxPoints).
	MaxCheckPoints = Points{decimal.New(1, 9)}
)

// maxRulePercent bounds an accrual percent (tiers too) and maxMultiplier a
// promotion's multiplier: far beyond any program, low enough that a rule
// cannot overflow the engine's integers on a check within the bounds.
var maxRulePercent, maxMultiplier = decimal.NewFromInt(10_000), decimal.NewFromInt(1_000)

const maxCheckTotalKop = 1_000_000_000_000

// maxTotalN is MaxCheckTotal as a working number.
var maxTotalN = numInt(maxCheckTotalKop, -kopScale)

// rangeError is the panic value of a checked conversion that does not fit
// int64. Validation makes it unreachable for amounts on the check; it guards
// the values the engine cannot bound up front (program parameters times
// quantities, lots). Quote and Return recover it and return it as an error,
// so an overflow is refused instead of wrapping silently.
type rangeError struct{ what string }

func (e *rangeError) Error() string {
	return e.what + " does not fit in int64: " + ErrOutOfRange.Error()
}

func (e *rangeError) Unwrap() []error { return []error{ErrOutOfRange, ErrInvalidInput} }

// nameOp, deferred, names the operation in the error its function
// returns ("op: …"), and turns a rangeError panic into that error; other
// panics go on. One place for the prefix: each return states the cause only.
func nameOp(err *error, op string) {
	if v := recover(); v != nil {
		re, ok := v.(*rangeError)
		if !ok {
			panic(v)
		}
		*err = re
	}
	if *err != nil {
		*err = fmt.Errorf("%s: %w", op, *err)
	}
}

// intPart is d's integer part (toward zero) when it fits int64.
func intPart(d decimal.Decimal) (int64, bool) {
	if int64(d.NumDigits())+int64(d.Exponent()) <= 18 {
		return d.IntPart(), true // under 10^18: always fits
	}
	b := d.Truncate(0)
	if b.LessThan(decimal.NewFromInt(math.MinInt64)) || b.GreaterThan(decimal.NewFromInt(math.MaxInt64)) {
		return 0, false
	}
	return b.IntPart(), true
}

// mustInt is intPart, panicking with a rangeError (see nameOp).
func mustInt(d decimal.Decimal, what string) int64 {
	n, ok := intPart(d)
	if !ok {
		panic(&rangeError{what: what + " " + d.String()})
	}
	return n
}

// checkLineBounds refuses a line whose price or quantity is over the
// bounds, naming the line.
func checkLineBounds(l *Line) error {
	switch {
	case l.Price.Cmp(MaxPrice) > 0:
		return fmt.Errorf("line %d: price %s over the maximum %s: %w", l.No, l.Price, MaxPrice, errRange)
	case l.Qty.Cmp(MaxQty) > 0:
		return fmt.Errorf("line %d: quantity %s over the maximum %s: %w", l.No, l.Qty, MaxQty, errRange)
	case l.Sum.Cmp(MaxCheckTotal) > 0:
		return fmt.Errorf("line %d: sum %s over the maximum check total %s: %w", l.No, l.Sum, MaxCheckTotal, errRange)
	}
	return nil
}

// errRange is ErrOutOfRange that also matches ErrInvalidInput, for callers
// that treat every refused input alike.
var errRange error = rangeInput{}

type rangeInput struct{}

func (rangeInput) Error() string   { return ErrOutOfRange.Error() }
func (rangeInput) Unwrap() []error { return []error{ErrOutOfRange, ErrInvalidInput} }
