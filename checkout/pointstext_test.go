package checkout

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

// TestPointsAppendStringIsString: AppendString writes what String does,
// for values on its fast path (up to 18 digits and places) and off it:
// zero, negatives, fractions below one, trailing zeros, whole numbers
// with a positive exponent, 19 digits and more, 19 places.
func TestPointsAppendStringIsString(t *testing.T) {
	var ds []decimal.Decimal
	for _, s := range []string{"0", "0.00", "-0.5", "5.50", "120", "12.5", "-7", "0.001", "-0.000100", "100.00", "999999999999999999",
		"-999999999999999999", "9223372036854775807", "-9223372036854775808", "12345678901234567890.5", "0.0000000000000000001", "1e3", "-2.5e2"} {
		ds = append(ds, decimal.RequireFromString(s))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		v := rng.Int64N(1 << rng.IntN(63))
		if rng.IntN(2) == 0 {
			v = -v
		}
		ds = append(ds, decimal.New(v, int32(rng.IntN(24)-21)))
	}
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	ds = append(ds, decimal.NewFromBigInt(huge, -5), decimal.NewFromBigInt(huge, 0))
	for _, d := range ds {
		p := PointsOf(d)
		if got, want := string(p.AppendString([]byte("x"))), "x"+p.String(); got != want {
			t.Fatalf("%s (coefficient %s, exponent %d): AppendString %q, String %q", d, d.Coefficient(), d.Exponent(), got, want)
		}
	}
}

func BenchmarkPointsText(b *testing.B) {
	p := MustPoints("1234.5")
	buf := make([]byte, 0, 64)
	b.Run("String", func(b *testing.B) {
		for b.Loop() {
			buf = append(buf[:0], p.String()...)
		}
	})
	b.Run("AppendString", func(b *testing.B) {
		for b.Loop() {
			buf = p.AppendString(buf[:0])
		}
	})
}
