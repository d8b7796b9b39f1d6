package checkout

import (
	"math"
	"math/bits"
	"strconv"

	"github.com/shopspring/decimal"
)

// num is the engine's internal working number: a decimal held as an int64
// coefficient × 10^exp while it fits, else as a shopspring decimal. Every
// operation follows shopspring/decimal's rules exactly, including the
// exponent of the result (Add/Sub: the smaller exponent; Mul: the sum;
// Round/Truncate/RoundUp as in the library), so dec() gives back the very
// decimal the library would have computed: same value, same exponent, same
// text. It exists because every decimal operation allocates a big.Int, and
// a quote does thousands of them; results are converted to decimals once, at
// the boundary (the Result). On int64 overflow an operation falls back to
// decimal arithmetic, so it is never less exact than the library.
type num struct {
	c int64
	e int32
	d *decimal.Decimal // the value, when it does not fit in int64
}

// pow10 holds 10^0 … 10^18, the powers that fit in int64.
var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// maxExp bounds the exponents num keeps in int64 form, so exponent
// arithmetic in the fast paths can never overflow int32; anything beyond
// (never seen in money or points) is left to the library.
const maxExp = 1 << 20

func saneExp(e int64) bool { return e >= -maxExp && e <= maxExp }

// numOf converts a decimal; values with more than 18 digits stay decimal.
func numOf(d decimal.Decimal) num {
	if d.NumDigits() > 18 || !saneExp(int64(d.Exponent())) {
		return bigNum(d)
	}
	return num{c: d.CoefficientInt64(), e: d.Exponent()}
}

// bigNum holds a value that did not fit in int64.
func bigNum(d decimal.Decimal) num { return num{d: &d} }

// numInt is c × 10^e.
func numInt(c int64, e int32) num { return num{c: c, e: e} }

// dec is the decimal with the same coefficient and exponent. The zero with
// exponent 0 is the decimal zero value, which needs no allocation.
func (a num) dec() decimal.Decimal {
	if a.d != nil {
		return *a.d
	}
	if a.c == 0 && a.e == 0 {
		return decimal.Decimal{}
	}
	return decimal.New(a.c, a.e)
}

// scaleUp multiplies c by 10^k, reporting overflow.
func scaleUp(c int64, k int32) (int64, bool) {
	if k == 0 || c == 0 {
		return c, true
	}
	if k < 0 || k > 18 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(absInt(c)), uint64(pow10[k]))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if c < 0 {
		return -int64(lo), true
	}
	return int64(lo), true
}

func absInt(c int64) int64 {
	if c < 0 {
		return -c
	}
	return c
}

// align brings a and b to the smaller exponent (decimal's rescale).
func align(a, b num) (x, y int64, e int32, ok bool) {
	if a.c == math.MinInt64 || b.c == math.MinInt64 {
		return 0, 0, 0, false
	}
	e = min(a.e, b.e)
	x, ok1 := scaleUp(a.c, a.e-e)
	y, ok2 := scaleUp(b.c, b.e-e)
	return x, y, e, ok1 && ok2
}

func (a num) add(b num) num {
	if a.d == nil && b.d == nil {
		if x, y, e, ok := align(a, b); ok {
			if s, over := addOver(x, y); !over {
				return num{c: s, e: e}
			}
		}
	}
	return bigNum(a.dec().Add(b.dec()))
}

func (a num) sub(b num) num {
	if a.d == nil && b.d == nil && b.c != math.MinInt64 {
		if x, y, e, ok := align(a, b); ok {
			if s, over := addOver(x, -y); !over {
				return num{c: s, e: e}
			}
		}
	}
	return bigNum(a.dec().Sub(b.dec()))
}

func addOver(x, y int64) (int64, bool) {
	s := x + y
	return s, (x > 0 && y > 0 && s < 0) || (x < 0 && y < 0 && s >= 0)
}

func (a num) mul(b num) num {
	if a.d == nil && b.d == nil && a.c != math.MinInt64 && b.c != math.MinInt64 {
		e := int64(a.e) + int64(b.e)
		hi, lo := bits.Mul64(uint64(absInt(a.c)), uint64(absInt(b.c)))
		if hi == 0 && lo <= math.MaxInt64 && saneExp(e) {
			c := int64(lo)
			if (a.c < 0) != (b.c < 0) {
				c = -c
			}
			return num{c: c, e: int32(e)}
		}
	}
	return bigNum(a.dec().Mul(b.dec()))
}

// shift adds s to the exponent (decimal's Shift).
func (a num) shift(s int32) num {
	if a.d != nil || !saneExp(int64(a.e)+int64(s)) {
		return bigNum(a.dec().Shift(s))
	}
	return num{c: a.c, e: a.e + s}
}

func (a num) sign() int {
	switch {
	case a.d != nil:
		return a.d.Sign()
	case a.c > 0:
		return 1
	case a.c < 0:
		return -1
	}
	return 0
}

func (a num) isZero() bool     { return a.sign() == 0 }
func (a num) isPositive() bool { return a.sign() > 0 }
func (a num) isNegative() bool { return a.sign() < 0 }

func (a num) cmp(b num) int {
	if a.d == nil && b.d == nil {
		if a.e == b.e {
			return cmpInt(a.c, b.c)
		}
		if x, y, _, ok := align(a, b); ok {
			return cmpInt(x, y)
		}
	}
	return a.dec().Cmp(b.dec())
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// truncate is decimal's Truncate(p): toward zero, only when finer than p.
func (a num) truncate(p int32) num {
	if a.d != nil {
		return numOf(a.d.Truncate(p))
	}
	if -p <= a.e {
		return a
	}
	k := -p - a.e
	if k > 18 {
		return num{e: -p}
	}
	return num{c: a.c / pow10[k], e: -p}
}

// round is decimal's Round(p): half away from zero, always to exponent −p.
func (a num) round(p int32) num {
	if a.d == nil && a.e != -p {
		t := -p - 1 // truncate to p+1 places first, as the library does
		c, ok := a.c, true
		if a.e > t {
			c, ok = scaleUp(a.c, a.e-t)
		} else if k := t - a.e; k > 18 {
			c = 0
		} else {
			c /= pow10[k]
		}
		if ok && c > math.MinInt64+5 && c < math.MaxInt64-5 {
			if c < 0 {
				c -= 5
			} else {
				c += 5
			}
			return num{c: c / 10, e: -p}
		}
	} else if a.d == nil {
		return a
	}
	return numOf(a.dec().Round(p))
}

// roundUp is decimal's RoundUp(p): away from zero.
func (a num) roundUp(p int32) num {
	if a.d == nil {
		if a.e >= -p {
			if c, ok := scaleUp(a.c, a.e+p); ok {
				return num{c: c, e: -p}
			}
		} else if k := -p - a.e; k <= 18 {
			q, r := a.c/pow10[k], a.c%pow10[k]
			if r > 0 {
				q++
			} else if r < 0 {
				q--
			}
			return num{c: q, e: -p}
		}
	}
	return numOf(a.dec().RoundUp(p))
}

// units is the value as a count of 10^-scale steps, truncated (decimal's
// Shift(scale).IntPart()). A value that does not fit int64 panics with a
// rangeError, which Quote and Return turn into an error.
func (a num) units(scale int32) int64 {
	if a.d == nil {
		e := a.e + scale
		switch {
		case e == 0:
			return a.c
		case e < 0 && e >= -18:
			return a.c / pow10[-e]
		case e > 0:
			if c, ok := scaleUp(a.c, e); ok {
				return c
			}
		}
	}
	return mustInt(a.dec().Shift(scale), "amount")
}

// appendText appends decimal's String() form (trailing zeros trimmed) when
// fixed is −1, or StringFixed(fixed) otherwise.
func (a num) appendText(b []byte, fixed int32) []byte {
	if fixed >= 0 {
		a = a.round(fixed)
	}
	trim := fixed < 0
	if a.d != nil || (trim && (!decimal.TrimTrailingZeros || decimal.UseScientificNotation)) || a.c == math.MinInt64 {
		if fixed >= 0 {
			return append(b, a.dec().StringFixed(fixed)...)
		}
		return append(b, a.dec().String()...)
	}
	if a.e >= 0 {
		c, ok := scaleUp(a.c, a.e)
		if !ok {
			return append(b, a.dec().String()...)
		}
		return strconv.AppendInt(b, c, 10)
	}
	c := a.c
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], uint64(c), 10)
	frac := int(-a.e)
	var intPart, fracPart []byte
	zeros := 0
	if len(digits) > frac {
		intPart, fracPart = digits[:len(digits)-frac], digits[len(digits)-frac:]
	} else {
		intPart, fracPart, zeros = []byte{'0'}, digits, frac-len(digits)
	}
	if trim {
		i := len(fracPart) - 1
		for i >= 0 && fracPart[i] == '0' {
			i--
		}
		fracPart = fracPart[:i+1]
		if len(fracPart) == 0 {
			zeros = 0
		}
	}
	b = append(b, intPart...)
	if zeros+len(fracPart) > 0 {
		b = append(b, '.')
		for range zeros {
			b = append(b, '0')
		}
		b = append(b, fracPart...)
	}
	return b
}

func (a num) String() string { return string(a.appendText(nil, -1)) }

// decCache hands out decimals for working numbers, one per distinct
// coefficient and exponent among recent ones: a quote prints the same
// amounts in several places (a line's points in its accrual and in its
// explanation, equal line shares, …), and each decimal costs two
// allocations. Sharing is safe because decimals are immutable values.
// Direct-mapped: a collision just builds a new decimal.
type decCache struct {
	key [128]struct {
		c int64
		e int32
		d decimal.Decimal
	}
}

func (k *decCache) dec(n num) decimal.Decimal {
	if n.d != nil || (n.c == 0 && n.e == 0) {
		return n.dec()
	}
	h := (uint64(n.c)*0x9E3779B97F4A7C15 + uint64(uint32(n.e))*0xC2B2AE3D27D4EB4F) >> 57
	s := &k.key[h]
	if s.c == n.c && s.e == n.e && s.d != (decimal.Decimal{}) {
		return s.d
	}
	d := decimal.New(n.c, n.e)
	s.c, s.e, s.d = n.c, n.e, d
	return d
}
