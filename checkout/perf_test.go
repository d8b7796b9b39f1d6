package checkout

import "testing"

// The documented benchmark quote stays well under the allocations it took
// before the engine worked in int64 (3215 a quote); a regression here shows
// up as GC in the p99 long before it shows in the p50.
func TestQuoteAllocationsBounded(t *testing.T) {
	in := benchInput()
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := Quote(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1300 {
		t.Errorf("Quote of the bench input: %.0f allocations, want ≤ 1300", allocs)
	}
}
