package checkout

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

// sameDecimal reports whether a and b have the same coefficient and
// exponent, not just the same value: num promises the library's exponents.
func sameDecimal(a, b decimal.Decimal) bool {
	return a.Exponent() == b.Exponent() && a.Coefficient().Cmp(b.Coefficient()) == 0
}

func randDecimal(rng *rand.Rand) decimal.Decimal {
	var c int64
	switch rng.IntN(6) {
	case 0:
		c = 0
	case 1:
		c = rng.Int64N(1000) - 500
	case 2:
		c = rng.Int64N(1e9)
	case 3: // near the int64 limit, so operations overflow into decimal
		c = math.MaxInt64 - rng.Int64N(1000)
		if rng.IntN(2) == 0 {
			c = -c
		}
	case 4: // beyond int64: num holds it as a decimal
		b := new(big.Int).Mul(big.NewInt(rng.Int64N(1e12)+1), big.NewInt(1e12))
		if rng.IntN(2) == 0 {
			b.Neg(b)
		}
		return decimal.NewFromBigInt(b, int32(rng.IntN(9))-6)
	default:
		c = rng.Int64N(1e15) - 5e14
	}
	return decimal.New(c, int32(rng.IntN(9))-6)
}

// Exponents beyond maxExp (never seen in money or points) are left to the
// library, with its results, so exponent arithmetic cannot overflow.
func TestNumAbsurdExponents(t *testing.T) {
	for _, e := range []int32{maxExp, -maxExp, maxExp + 1, -maxExp - 1, 1 << 30, -1 << 30} {
		a, b := decimal.New(12345, e), decimal.New(-678, e)
		na, nb := numOf(a), numOf(b)
		for _, c := range []struct {
			op        string
			got, want decimal.Decimal
		}{
			{"add", na.add(nb).dec(), a.Add(b)},
			{"sub", na.sub(nb).dec(), a.Sub(b)},
			{"shift", na.shift(-2).dec(), a.Shift(-2)},
			{"mul", na.mul(numInt(3, 0)).dec(), a.Mul(decimal.New(3, 0))},
		} {
			if !sameDecimal(c.got, c.want) {
				t.Errorf("e %d: %s = %s e%d, want %s e%d", e, c.op, c.got, c.got.Exponent(), c.want, c.want.Exponent())
			}
		}
		if na.cmp(nb) != a.Cmp(b) || na.sign() != a.Sign() {
			t.Errorf("e %d: cmp or sign differ", e)
		}
	}
}

// TestNumMatchesDecimal checks every num operation against shopspring/decimal
// on random values, including values and results that do not fit in int64:
// same coefficient, same exponent, same text.
func TestNumMatchesDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 20000 {
		a, b := randDecimal(rng), randDecimal(rng)
		na, nb := numOf(a), numOf(b)
		p := int32(rng.IntN(7)) - 2
		check := func(op string, got num, want decimal.Decimal) {
			t.Helper()
			if !sameDecimal(got.dec(), want) {
				t.Fatalf("%d: %s(%s e%d, %s e%d) = %s e%d, want %s e%d", i, op, a, a.Exponent(), b, b.Exponent(),
					got.dec(), got.dec().Exponent(), want, want.Exponent())
			}
		}
		check("add", na.add(nb), a.Add(b))
		check("sub", na.sub(nb), a.Sub(b))
		check("mul", na.mul(nb), a.Mul(b))
		check("shift", na.shift(p), a.Shift(p))
		check(fmt.Sprint("round", p), na.round(p), a.Round(p))
		check(fmt.Sprint("truncate", p), na.truncate(p), a.Truncate(p))
		check(fmt.Sprint("roundUp", p), na.roundUp(p), a.RoundUp(p))
		if got, want := na.cmp(nb), a.Cmp(b); got != want {
			t.Fatalf("%d: cmp(%s, %s) = %d, want %d", i, a, b, got, want)
		}
		if got, want := na.sign(), a.Sign(); got != want {
			t.Fatalf("%d: sign(%s) = %d, want %d", i, a, got, want)
		}
		if got, want := na.String(), a.String(); got != want {
			t.Fatalf("%d: String(%s e%d) = %q, want %q", i, a, a.Exponent(), got, want)
		}
		if got, want := string(na.appendText(nil, 2)), a.StringFixed(2); got != want {
			t.Fatalf("%d: StringFixed(%s) = %q, want %q", i, a, got, want)
		}
		if s := int32(rng.IntN(5)); a.Abs().Shift(s).LessThan(decimal.New(1, 17)) {
			if got, want := na.units(s), a.Shift(s).IntPart(); got != want {
				t.Fatalf("%d: units(%s, %d) = %d, want %d", i, a, s, got, want)
			}
		}
	}
}

// allocateNums gives the same parts as allocate on the same weights.
func TestAllocateNumsMatchesAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 5000 {
		ws := make([]decimal.Decimal, 1+rng.IntN(12))
		ns := make([]num, len(ws))
		for k := range ws {
			ws[k] = decimal.New(rng.Int64N(100000)-10000, -int32(rng.IntN(4)))
			if rng.IntN(50) == 0 {
				ws[k] = randDecimal(rng)
			}
			ns[k] = numOf(ws[k])
		}
		total := rng.Int64N(1_000_000)
		p1, ok1 := allocate(total, ws)
		p2, ok2 := allocateNums(total, ns)
		if ok1 != ok2 || fmt.Sprint(p1) != fmt.Sprint(p2) {
			t.Fatalf("%d: total %d over %v: allocate %v %v, allocateNums %v %v", i, total, ws, p1, ok1, p2, ok2)
		}
	}
}
