package sale

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/driver/fiscal"
	"tillagent/internal/store"
)

// BenchmarkDurableCommit is what a sale writes around the printer, each
// step fsynced (synchronous=FULL): the pending document, the fiscal
// checkpoint, the journal entries and the finished document. Goal: p99
// ≤ 10 ms and ≥ 300 sales/s.
//
//	go test -run '^$' -bench DurableCommit -benchtime 2000x ./internal/sale/
func BenchmarkDurableCommit(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(b.TempDir(), "till.db"), TillID: "S001-T01"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ImportFile(ctx, "../../testdata/demo/replica.yaml"); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	check := checkout.Check{StoreID: "S001", Lines: []checkout.Line{
		{No: 1, ProductID: "1001", Qty: checkout.MustQty("2"), Price: checkout.MustMoney("89.90")},
		{No: 2, ProductID: "1101", Qty: checkout.MustQty("1"), Price: checkout.MustMoney("61.10")},
	}}
	cp, _ := json.Marshal(fiscal.Checkpoint{ReceiptID: "x", LastFD: 1, Kind: fiscal.Sale, Total: 24090})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	var busy time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		check.ID = fmt.Sprintf("B-%d", i)
		in, err := st.QuoteInput(ctx, check, []string{"2900000000018"}, now)
		if err != nil {
			b.Fatal(err)
		}
		res, err := checkout.Quote(in)
		if err != nil {
			b.Fatal(err)
		}
		rec, _ := json.Marshal(saleRecord{Check: in.Check, Result: res})
		b.StartTimer()
		t0 := time.Now()
		d := store.Doc{ID: check.ID, Kind: store.DocSale, IdemKey: check.ID, RequestSHA: "x", Result: rec, Receipt: []byte("{}")}
		if _, err := st.BeginDoc(ctx, d); err != nil {
			b.Fatal(err)
		}
		if err := st.SaveCheckpoint(ctx, d.ID, cp); err != nil {
			b.Fatal(err)
		}
		if _, err := st.RecordFiscalSale(ctx, res, uint32(i+2), 1); err != nil {
			b.Fatal(err)
		}
		if err := st.FinishDoc(ctx, d.ID, uint32(i+2), 1, rec); err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		busy += el
		lat = append(lat, el)
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/busy.Seconds(), "commits/s")
}
