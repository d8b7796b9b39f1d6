package checkout

import (
	"cmp"
	"math/big"
	"slices"
	"sort"

	"github.com/shopspring/decimal"
)

// allocate splits total (a whole number of units, ≥ 0: kopecks or point
// steps) over weights by the largest-remainder method. Each part is
// floor(total × w / Σw) plus at most one unit; the units left over go to the
// largest remainders, ties to the earlier index. Parts sum exactly to total,
// zero or negative weights get nothing, and a part never exceeds its exact
// share rounded up, so when weights are caps in the same units (total ≤ Σw),
// no part exceeds its cap. With no positive weight the result is all zeros
// and ok is false.
func allocate(total int64, weights []decimal.Decimal) (parts []int64, ok bool) {
	parts = make([]int64, len(weights))
	if total == 0 {
		return parts, true
	}
	// Bring the weights to integers on a common exponent so the arithmetic
	// is exact (no division rounding).
	exp := int32(0)
	for _, w := range weights {
		if w.IsPositive() && w.Exponent() < exp {
			exp = w.Exponent()
		}
	}
	if parts, ok, fast := allocate64(total, weights, exp); fast {
		return parts, ok
	}
	ints := make([]*big.Int, len(weights))
	sum := new(big.Int)
	for i, w := range weights {
		if !w.IsPositive() {
			ints[i] = new(big.Int)
			continue
		}
		ints[i] = w.Shift(-exp).BigInt()
		sum.Add(sum, ints[i])
	}
	if sum.Sign() == 0 {
		return parts, false
	}
	type rem struct {
		i int
		r *big.Int
	}
	rems := make([]rem, 0, len(weights))
	t := big.NewInt(total)
	var given int64
	for i, w := range ints {
		if w.Sign() == 0 {
			continue
		}
		num := new(big.Int).Mul(t, w)
		q, r := new(big.Int).QuoRem(num, sum, new(big.Int))
		parts[i] = q.Int64()
		given += parts[i]
		if r.Sign() > 0 {
			rems = append(rems, rem{i, r})
		}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r.Cmp(rems[b].r) > 0 })
	for k := 0; given < total; k++ {
		parts[rems[k].i]++
		given++
	}
	return parts, true
}

// unitsOf converts d to an integer count of 10^-scale steps; d must already
// be on that scale (callers round first). Out of int64 range it panics with
// a rangeError (see nameOp) rather than wrap.
func unitsOf(d decimal.Decimal, scale int32) int64 {
	return mustInt(d.Shift(scale), "point or kopeck steps")
}

// fromUnits is the inverse of unitsOf.
func fromUnits(u int64, scale int32) decimal.Decimal {
	return decimal.New(u, -scale)
}

// allocateNums is allocate over working numbers. The usual weights (caps
// and shares in kopecks or point steps) fit in int64 and are split without
// building a decimal; anything larger goes through allocate.
func allocateNums(total int64, weights []num) (parts []int64, ok bool) {
	exp := int32(0)
	for _, w := range weights {
		if w.d != nil {
			return allocateSlow(total, weights)
		}
		if w.c > 0 && w.e < exp {
			exp = w.e
		}
	}
	if total == 0 {
		return make([]int64, len(weights)), true
	}
	ints := make([]int64, len(weights))
	for i, w := range weights {
		if w.c <= 0 {
			continue
		}
		c, fits := scaleUp(w.c, w.e-exp)
		if !fits {
			return allocateSlow(total, weights)
		}
		ints[i] = c
	}
	if parts, ok, fast := allocateInts(total, ints); fast {
		return parts, ok
	}
	return allocateSlow(total, weights)
}

func allocateSlow(total int64, weights []num) ([]int64, bool) {
	ds := make([]decimal.Decimal, len(weights))
	for i, w := range weights {
		ds[i] = w.dec()
	}
	return allocate(total, ds)
}

// allocate64 is allocate in int64 arithmetic, used when every product
// total × weight fits without overflow (the usual case: kopecks and point
// steps). fast is false when it does not apply and big.Int must be used.
func allocate64(total int64, weights []decimal.Decimal, exp int32) (parts []int64, ok, fast bool) {
	const limit = 1 << 62
	ints := make([]int64, len(weights))
	for i, w := range weights {
		if !w.IsPositive() {
			continue
		}
		shift := w.Exponent() - exp
		if shift > 18 {
			return nil, false, false
		}
		if w.NumDigits() > 18 {
			return nil, false, false
		}
		c := w.CoefficientInt64()
		for ; shift > 0; shift-- {
			if c > limit/10 {
				return nil, false, false
			}
			c *= 10
		}
		ints[i] = c
	}
	return allocateInts(total, ints)
}

// allocateInts is the largest-remainder split over non-negative integer
// weights; fast is false when total × weight or Σ weights could overflow.
func allocateInts(total int64, ints []int64) (parts []int64, ok, fast bool) {
	const limit = 1 << 62
	var sum int64
	nrem := 0
	for _, c := range ints {
		if c <= 0 {
			continue
		}
		sum += c
		nrem++
		if sum > limit || c > limit || total > limit/c {
			return nil, false, false
		}
	}
	parts = make([]int64, len(ints))
	if sum == 0 {
		return parts, false, true
	}
	type rem struct {
		i int
		r int64
	}
	var small [64]rem
	rems := small[:0]
	if nrem > len(small) {
		rems = make([]rem, 0, nrem)
	}
	var given int64
	for i, w := range ints {
		if w <= 0 {
			continue
		}
		num := total * w
		parts[i] = num / sum
		given += parts[i]
		if r := num % sum; r > 0 {
			rems = append(rems, rem{i, r})
		}
	}
	if given < total {
		// Largest remainder first, ties to the earlier index: a total
		// order, so an unstable sort gives the stable sort's result.
		slices.SortFunc(rems, func(a, b rem) int {
			if c := cmp.Compare(b.r, a.r); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		for k := 0; given < total; k++ {
			parts[rems[k].i]++
			given++
		}
	}
	return parts, true, true
}
