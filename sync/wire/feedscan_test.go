package wire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// sameAsDecode fails t unless scanFeed either declines data or decodes it
// exactly as encoding/json does; it reports whether scanFeed took it.
func sameAsDecode(t *testing.T, data []byte) bool {
	t.Helper()
	got, ok := scanFeed(data)
	if !ok {
		return false
	}
	var want feedEnvelope[*store.Replica]
	if err := strictDecode(data, &want); err != nil {
		t.Fatalf("scanFeed took a feed encoding/json refuses (%v):\n%.400s", err, data)
	}
	w := want.feed()
	w.Replica = want.Replica
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("scanFeed and encoding/json differ:\n%+v\n%+v\n%.400s", got.Replica, w.Replica, data)
	}
	return true
}

func scanFeedSeeds(t testing.TB) [][]byte {
	at := time.Date(2026, 11, 30, 12, 0, 0, 123000000, time.FixedZone("MSK", 3*3600))
	exp, from := at.AddDate(1, 0, 0), at.Add(time.Hour)
	rem := checkout.MustPoints("4.5")
	full := &store.Replica{Version: 1, AsOf: &at,
		Stores: []store.ReplicaStore{{ID: "S001", Name: "Магазин", TimeZone: "Europe/Moscow"}},
		Cards: []store.ReplicaCard{
			{Code: "2900000000018", Kind: "bonus", State: checkout.StateActive},
			{Code: "2900000000025", Kind: "bonus", Program: "p2", State: checkout.StateBlocked, BlockReason: "lost",
				Holder: "Иванова А. Б.", Debt: checkout.MustPoints("3.25"),
				History: store.CardHistory{Month: "2026-11", PurchasesAllTime: checkout.MustMoney("12345.67"), PurchasesMonth: checkout.MustMoney("100"),
					PurchasesPrevMonth: checkout.MustMoney("0.01"), AccruedMonth: checkout.MustPoints("12.5"), RedeemedMonth: checkout.MustPoints("7")}},
			{Code: "a\"b<&>", Kind: "bonus", State: checkout.StateActive}, // escaped: declined
		},
		Lots: []store.ReplicaLot{
			{ID: "S001-T01-1", Card: "2900000000018", Points: checkout.MustPoints("10"), Remaining: &rem, AccruedAt: at},
			{ID: "L2", Card: "2900000000025", Points: checkout.MustPoints("0.000000001"), AccruedAt: at.UTC(), ActiveFrom: &from, ExpiresAt: &exp, CheckID: "c-7"},
		},
		FoldedThrough: map[string]string{"S001-T01": "S001-T01-1"}}
	plain := *full
	plain.Cards = full.Cards[:2]
	var seeds [][]byte
	for _, f := range []Feed{
		{Cursor: "e2:1234", Replica: &plain, More: true, Next: "2900000000025", Full: true},
		{Cursor: "e2:1234", Replica: full},
		{Cursor: "99", Replica: &store.Replica{Version: 1, Lots: plain.Lots}},
		{Cursor: "99", Replica: &store.Replica{Version: 1, Cards: plain.Cards}},
	} {
		b, err := f.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	demo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "replica", "minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds, []byte(`{"cursor":"904","full":true,"replica":`+string(demo)+`}`),
		[]byte(` { "cursor" : "1" , "replica" : { "version" : 1 , "cards" : [ ] , "lots" : [ { "id" : "x" , "card" : "y" , "points" : "1" , "accrued_at" : "2026-01-01T00:00:00Z" } ] } } `),
		[]byte(`{"cursor":"1","replica":{"version":1,"cards":[{"code":"1","kind":"k","state":"active","Debt":"1"}]}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"Cards":[{"code":"1","kind":"k","state":"active"}]}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"cards":[{"code":"1","kind":"k","state":"active"}],"cards":[]}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"lots":[{"id":"x","card":"y","points":5,"accrued_at":"2026-01-01T00:00:00Z"}]}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"lots":[{"id":"x","card":"y","points":"5","remaining":null,"accrued_at":"2026-01-01T00:00:00Z"}]}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"cards":[{"code":"1","kind":"k","state":"active"}]},"replica":{"version":1}}`),
		[]byte(`{"cursor":"1","replica":{"version":1,"cards":[{"code":"1","kind":"k","state":"active"}]}} x`),
		[]byte(`{"cursor":"1","replica":{"version":1,"cards":[{"code":"1","kind":"k","state":"active","holder":"\u0041"}]}}`))
}

// TestScanFeedIsDecode: the feeds head office writes are read by hand and
// come out as encoding/json reads them; what the hand reading cannot be
// sure of (a key in another case, a key twice, null, a number, an escape,
// a second replica) it leaves to encoding/json.
func TestScanFeedIsDecode(t *testing.T) {
	seeds := scanFeedSeeds(t)
	for i, data := range seeds {
		took := sameAsDecode(t, data)
		// The first five are head office's own writing, and the sixth is the
		// same with white space everywhere.
		if want := i != 1 && i < 6; took != want {
			t.Errorf("feed %d: read by hand %v, want %v:\n%.300s", i, took, want, data)
		}
		// DecodeFeed gives the same whichever way it read.
		got, err := DecodeFeed(data)
		var whole feedEnvelope[*store.Replica]
		if strictDecode(data, &whole) == nil && whole.Replica != nil && whole.Cursor != "" {
			if err != nil || !reflect.DeepEqual(got.Replica, whole.Replica) {
				t.Errorf("feed %d: DecodeFeed %v, differs from encoding/json", i, err)
			}
		}
	}
	// A page of many cards and lots, as a first load's.
	r := &store.Replica{Version: 1}
	at := time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)
	for i := range 2000 {
		code := "32" + strings.Repeat("0", 10) + string(rune('0'+i%10))
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		r.Lots = append(r.Lots, store.ReplicaLot{ID: "L" + string(rune('a'+i%26)), Card: code, Points: checkout.MustPoints("100"), AccruedAt: at})
	}
	b, err := (&Feed{Cursor: "1", More: true, Next: "x", Replica: r}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsDecode(t, b) {
		t.Error("a page of 2,000 cards was not read by hand")
	}
}

func BenchmarkDecodeFeed(b *testing.B) {
	r := &store.Replica{Version: 1}
	at := time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)
	exp := at.AddDate(1, 0, 0)
	rem := checkout.MustPoints("60")
	for i := range 5000 {
		code := "3200000" + strings.Repeat("0", 5) + string(rune('0'+i%10))
		r.Cards = append(r.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for k := range 5 {
			r.Lots = append(r.Lots, store.ReplicaLot{ID: "L" + string(rune('0'+k)), Card: code, Points: checkout.MustPoints("100"),
				Remaining: &rem, AccruedAt: at, ActiveFrom: &at, ExpiresAt: &exp})
		}
	}
	data, err := (&Feed{Cursor: "1", More: true, Next: "x", Replica: r}).AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"scan", func() error { _, err := DecodeFeed(data); return err }},
		{"encoding-json", func() error {
			var whole feedEnvelope[*store.Replica]
			return strictDecode(data, &whole)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
