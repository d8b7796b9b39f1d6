package checkout

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchInput is the documented benchmark case: a 50-line check, 20 active
// promotions (2 period-wide, 18 on groups or products), three accrual rules,
// a discount, every redemption limit, a combined card with 200 lots and an
// agent card; 500 points requested.
func benchInput() Input {
	p := prog(func(p *Program) {
		p.PointRounding = Rounding{Scale: 0, Mode: RoundDown}
		p.ActivationDays, p.ExpiryDays = 14, 180
		p.Accrual = []AccrualRule{
			{ID: "base", Kind: AccrualPercent, Tiers: &TierTable{Basis: BasisAllTime, Levels: []TierLevel{
				{Percent: MustPercent("1")}, {From: MustMoney("10000"), Percent: MustPercent("3")}, {From: MustMoney("50000"), Percent: MustPercent("5")}}},
				ExcludeGroups: []string{"g7"}},
			{ID: "coffee", Kind: AccrualPerUnit, Points: MustPoints("5"), IncludeProducts: []string{"p3", "p13"}},
			{ID: "agent", Kind: AccrualFixed, For: ForAgent, Points: MustPoints("100")},
		}
		for k := range 20 {
			pr := Promotion{ID: fmt.Sprint("promo", k), From: MustLocalTime("2026-11-01"), To: MustLocalTime("2026-12-01"), Multiplier: MustFactor("1.5")}
			switch {
			case k < 2:
				pr.Scope = ScopeAll
			case k%2 == 0:
				pr.Scope, pr.Groups = ScopeGroups, []string{fmt.Sprint("g", k%10)}
			default:
				pr.Scope, pr.ProductMultipliers = ScopeProducts, map[string]Factor{fmt.Sprint("p", k): MustFactor("3"), fmt.Sprint("p", k+1): MustFactor("2")}
			}
			p.Promotions = append(p.Promotions, pr)
		}
		p.Redemption = RedemptionRules{MaxCheckPercent: pct("50"), Segments: []string{"regular"}, MinMarkupPercent: pct("10"),
			MinRedeem: MustPoints("10"), MonthlyCap: pts("5000")}
		p.Discount = &DiscountRules{ID: "cat", Mode: DiscountCategory, Categories: []CategoryDiscount{{Group: "g1", Percent: MustPercent("5")}, {Group: "g2", Percent: MustPercent("10")}}}
	})
	var lines []Line
	for k := range 50 {
		l := ln(k+1, fmt.Sprint("p", k), fmt.Sprintf("%d.%02d", 50+k*13, k), fmt.Sprint(1+k%3),
			groups(fmt.Sprint("g", k%10), "all"), segment(pick2(k%5 == 0, "promo", "regular")), cost(fmt.Sprintf("%d.00", 30+k*9)))
		l.Tobacco = k == 17
		lines = append(lines, l)
	}
	c := crd("C", KindCombined, StateActive)
	c.PurchasesAllTime = MustMoney("23000.00")
	for k := range 200 {
		c.Lots = append(c.Lots, lot(fmt.Sprint("L", k), "7", 1+(k*37)%400))
	}
	in := input(lines, []Program{p}, c, crd("G", KindReferral, StateActive))
	in.Redeem = pts("500")
	return in
}

func pick2(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// BenchmarkQuote measures one quote of benchInput and reports the p99 of the
// per-quote durations as p99-ns.
func BenchmarkQuote(b *testing.B) {
	in := benchInput()
	if _, err := Quote(in); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	oncpu := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	defer lockThread()()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		c0, ok0 := threadCPU()
		if _, err := Quote(in); err != nil {
			b.Fatal(err)
		}
		if c1, ok1 := threadCPU(); ok0 && ok1 {
			oncpu = append(oncpu, time.Duration(c1-c0))
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, durs)
	reportOnCPU(b, oncpu)
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(len(durs)), "cpu-ns/op")
	}
}

// BenchmarkReturn measures a partial return of 10 lines of the bench check.
func BenchmarkReturn(b *testing.B) {
	in := benchInput()
	orig, err := Quote(in)
	if err != nil {
		b.Fatal(err)
	}
	rin := ReturnInput{Original: orig, Cards: in.Cards, Programs: in.Programs, Now: now.Add(days(1)), Location: msk}
	for k := range 10 {
		rin.Lines = append(rin.Lines, ReturnLine{No: 1 + k*5, Qty: MustQty("1")})
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := Return(rin); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, durs)
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(len(durs)), "cpu-ns/op")
	}
}

// reportOnCPU reports the p50 and p99 of the time each operation ran on a
// core. On a shared machine a wall-clock p99 far above it is time spent
// waiting for a core, not computing.
func reportOnCPU(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[min(len(d)-1, int(q*float64(len(d))))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "cpu-p50-ns")
	b.ReportMetric(at(0.99), "cpu-p99-ns")
}

func reportPercentiles(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	at := func(q float64) float64 {
		return float64(durs[min(len(durs)-1, int(q*float64(len(durs))))].Nanoseconds())
	}
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

// The bench case must stay a real, fully exercised quote.
func TestBenchInputIsRealistic(t *testing.T) {
	in := benchInput()
	r := mustQuote(t, in)
	if !r.Redemption.Points.Equal(MustPoints("500")) || !r.Cards[0].Accrued.IsPositive() || !r.Cards[1].Accrued.Equal(MustPoints("100")) || !r.Discount.IsPositive() {
		t.Errorf("bench quote not fully exercised: redeemed %s accrued %s/%s discount %s", r.Redemption.Points, r.Cards[0].Accrued, r.Cards[1].Accrued, r.Discount)
	}
	if len(r.Redemption.LotsConsumed) < 50 {
		t.Errorf("only %d lots consumed", len(r.Redemption.LotsConsumed))
	}
}
