package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// TestFeedAppendJSON: a feed's AppendJSON is json.Marshal's encoding of
// it, with and without each optional field.
func TestFeedAppendJSON(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rem := checkout.MustPoints("4.5")
	full := &store.Replica{Version: 1, AsOf: &at, Cards: []store.ReplicaCard{{Code: "2900000000018", Kind: "bonus", State: checkout.StateActive, Debt: checkout.MustPoints("3")}},
		Lots:          []store.ReplicaLot{{ID: "S001-T01-1", Card: "2900000000018", Points: checkout.MustPoints("10"), Remaining: &rem, AccruedAt: at}},
		FoldedThrough: map[string]string{"S001-T01": "S001-T01-1"}}
	for i, f := range []Feed{
		{Cursor: "e2:1234", Replica: full, Offline: &store.OfflineLimits{CardCap: decimal.NewFromInt(500), MaxAge: time.Hour}, More: true, Next: "2900000000018", Full: true},
		{Cursor: "99", Replica: &store.Replica{Version: 1}, JournalHeld: "S001-T01-01KC0000000000000000000000"},
		{Cursor: "1", Reset: true, Replica: &store.Replica{Version: 1, FoldedThrough: map[string]string{"S001-T01": "x"}}},
		{Cursor: "<&>"},
	} {
		want, err := json.Marshal(&f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("feed %d: AppendJSON %s (%v)\njson.Marshal %s", i, got, err, want)
		}
		if f.Replica == nil {
			continue
		}
		back, err := DecodeFeed(got)
		if err != nil || back.JournalHeld != f.JournalHeld || back.Reset != f.Reset || back.Cursor != f.Cursor {
			t.Errorf("feed %d decoded again: %+v, %v", i, back, err)
		}
	}
}
