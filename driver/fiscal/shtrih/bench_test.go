package shtrih_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
)

// twentyLines is a 20-line receipt with points redeemed on every line and 1084 tags.
func twentyLines(t testing.TB, id string) fiscal.Receipt {
	var lines []fiscal.PlainLine
	var red []fiscal.Money
	var total, points fiscal.Money
	for i := 0; i < 20; i++ {
		l := fiscal.PlainLine{Name: fmt.Sprintf("Товар номер %02d молочный", i+1), Qty: fiscal.Units(int64(1 + i%3)), Price: fiscal.Money(4990 + 137*i), VAT: fiscal.VAT20}
		if i%4 == 3 {
			l.VAT = fiscal.VAT10
		}
		lines = append(lines, l)
		sum := fiscal.Money(int64(l.Price) * int64(1+i%3))
		total += sum
		red = append(red, sum/10)
		points += sum / 10
	}
	r, err := fiscal.BuildReceipt(fiscal.BonusCheck{ID: id, Lines: lines, Redeemed: red, Money: fiscal.Payments{Cash: total - points},
		Loyalty: &fiscal.LoyaltyInfo{Card: "7000123412341234", Spent: decimal.NewFromInt(int64(points / 100)), Earned: decimal.NewFromInt(12), Balance: decimal.NewFromInt(340)}})
	if err != nil {
		t.Fatal(err)
	}
	r.Cashier = "Иванова А."
	return r
}

// One receipt with the real 115200 throttling: it completes and takes at
// least the wire time (a lower bound the throttle guarantees).
func TestThrottled115200(t *testing.T) {
	r := newRig(t, rigOpts{baud: 115200, emu: emulator.Config{Throttle: true, ByteTimeout: 50 * time.Millisecond}, drv: shtrih.Options{ByteTimeout: 150 * time.Millisecond, AnswerTimeout: time.Second}})
	openShift(t, r)
	r.em.ResetStats()
	start := time.Now()
	res, err := r.drv.PrintReceipt(ctxT(t), twentyLines(t, "t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	st := r.em.Stats()
	wire := time.Duration(st.BytesIn+st.BytesOut) * 10 * time.Second / 115200
	if el < wire {
		t.Errorf("took %v, less than the wire time %v of %d bytes: throttle not applied", el, wire, st.BytesIn+st.BytesOut)
	}
	j := r.em.Journal()
	if last := j[len(j)-1]; last.FD != res.FD || len(last.Items) < 20 || last.T1084 == nil {
		t.Errorf("journal %+v", last)
	}
	checkFFD(t, j[len(j)-1])
	t.Logf("%d bytes, wire %v, took %v", st.BytesIn+st.BytesOut, wire, el)
}

// BenchmarkReceipt20Lines115200: a 20-line receipt with bonus payment and 1084
// tags against the throttled emulator. floor = bytes × 10 / baud + the
// emulator's own execution time; x_floor is the measured time over it.
func BenchmarkReceipt20Lines115200(b *testing.B) {
	for _, always := range []bool{false, true} {
		name := "skipENQ"
		if always {
			name = "alwaysENQ"
		}
		b.Run(name, func(b *testing.B) { benchReceipt(b, always) })
	}
}

func benchReceipt(b *testing.B, alwaysENQ bool) {
	r := newRig(b, rigOpts{baud: 115200, emu: emulator.Config{Throttle: true, ByteTimeout: 50 * time.Millisecond},
		drv: shtrih.Options{ByteTimeout: 150 * time.Millisecond, AnswerTimeout: time.Second, AlwaysENQ: alwaysENQ}})
	openShift(b, r)
	rc := twentyLines(b, "bench")
	ctx := ctxT(b)
	r.em.ResetStats()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := r.drv.PrintReceipt(ctx, rc, nil); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	st := r.em.Stats()
	bytes := st.BytesIn + st.BytesOut
	floor := time.Duration(bytes)*10*time.Second/115200 + st.Busy
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/op")
	b.ReportMetric(float64(floor.Microseconds())/1000/float64(b.N), "floor-ms/op")
	b.ReportMetric(float64(el)/float64(floor), "x_floor")
}
