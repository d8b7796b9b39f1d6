package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tillagent/internal/store"
)

const seedBatch = `{"till_id":"S001-T01","entries":[
{"id":"S001-T01-01KX0000000000000000000001","check_id":"c1","card_code":"2900000000018","kind":"redemption",
 "points":"-150","amount_kop":15000,"purchase_kop":0,"lots":[{"lot_id":"L-13-1","delta":"-100"},{"lot_id":"L-13-2","delta":"-50"}],
 "created_at":"2026-11-23T12:00:00+03:00","acked":false,"prev":""},
{"id":"S001-T01-01KX0000000000000000000002","check_id":"c1","card_code":"2900000000018","kind":"accrual",
 "points":"40","amount_kop":0,"purchase_kop":125380,"lots":[{"lot_id":"S001-T01-01KX0000000000000000000002","delta":"40","create":true,
 "active_from":"2026-12-07T12:00:00+03:00","expires_at":"2027-05-22T12:00:00+03:00"}],
 "created_at":"2026-11-23T12:00:00+03:00","acked":false,"prev":"S001-T01-01KX0000000000000000000001"}]}`

// FuzzDecodeBatch: any input either fails with an error or decodes to a
// batch whose every entry passes CheckEntry, and which re-encodes to the
// same batch.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(seedBatch))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[]}`))
	f.Add([]byte(`{"till_id":"","entries":null}`))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[{"id":"S001-T02-01KX0000000000000000000001"}]}`))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[]} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		for i := range b.Entries {
			if err := CheckEntry(b.TillID, &b.Entries[i]); err != nil {
				t.Fatalf("decoded entry %d fails its check: %v", i, err)
			}
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v\n%s", err, again)
		}
		j1, _ := json.Marshal(b)
		j2, _ := json.Marshal(b2)
		if string(j1) != string(j2) {
			t.Fatalf("batch changed through a round trip:\n%s\n%s", j1, j2)
		}
	})
}

// FuzzDecodeFeed: any input either fails or gives a replica that passes
// validation and survives a round trip.
func FuzzDecodeFeed(f *testing.F) {
	demo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "replica", "minimal.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"cursor":"904","full":true,"replica":` + string(demo) + `}`))
	f.Add([]byte(`{"cursor":"1","replica":{"version":1,"folded_through":{"S001-T01":"S001-T01-01KX0000000000000000000002"}}}`))
	f.Add([]byte(`{"cursor":"1","replica":{"version":1,"lots":[{"id":"L1","card":"x","points":"5","remaining":"7","accrued_at":"2026-01-01T00:00:00Z"}]}}`))
	f.Add([]byte(`{"cursor":"","replica":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fd, err := DecodeFeed(data)
		if err != nil {
			return
		}
		// The fast path must accept nothing the record-by-record parser refuses.
		var raw struct {
			Replica json.RawMessage `json:"replica"`
		}
		if json.Unmarshal(data, &raw) == nil {
			if _, err := store.ParseReplica(raw.Replica, "json"); err != nil {
				t.Fatalf("DecodeFeed accepted a replica ParseReplica refuses: %v", err)
			}
		}
		if err := fd.Replica.Validate(func(string, string) (bool, error) { return true, nil }); err != nil {
			t.Fatalf("decoded feed does not validate: %v", err)
		}
		again, err := json.Marshal(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd2, err := DecodeFeed(again)
		if err != nil {
			t.Fatalf("re-encoded feed does not decode: %v\n%s", err, again)
		}
		if fd2.Cursor != fd.Cursor || fd2.Full != fd.Full || !reflect.DeepEqual(counts(fd.Replica), counts(fd2.Replica)) {
			t.Fatalf("feed changed through a round trip")
		}
	})
}

func counts(r *store.Replica) []int {
	return []int{len(r.Stores), len(r.Groups), len(r.Products), len(r.Programs), len(r.Promotions), len(r.CardKinds),
		len(r.Cards), len(r.Lots), len(r.CardKeys), len(r.FoldedThrough)}
}

func TestDecodeBatchErrorsNameTheEntry(t *testing.T) {
	entry := func(id, kind, points, lots, prev string) string {
		return `{"id":"` + id + `","check_id":"c","card_code":"1","kind":"` + kind + `","points":"` + points + `"` + lots +
			`,"created_at":"2026-01-01T00:00:00Z","prev":"` + prev + `"}`
	}
	good := entry("S001-T01-01KX0000000000000000000005", "accrual", "1", "", "")
	// Entries that decode but are wrong are rejected one by one; the others stay.
	for _, c := range []struct{ in, want string }{
		{entry("S001-T02-01KX0000000000000000000001", "accrual", "1", "", ""),
			`entries[0] id "S001-T02-01KX0000000000000000000001": not a journal id of till S001-T01`},
		{entry("S001-T01-01KX0000000000000000000001", "gift", "1", "", ""), `unknown kind "gift"`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "2", `,"lots":[{"lot_id":"a","delta":"1","create":true,"active_from":"2026-01-01T00:00:00Z"}]`, ""),
			`points 2 differ from the sum of lot deltas 1`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1", "", "S001-T01-01KX0000000000000000000009"),
			`prev "S001-T01-01KX0000000000000000000009" is not an earlier id`},
	} {
		b, err := DecodeBatch([]byte(`{"till_id":"S001-T01","entries":[` + c.in + `,` + good + `]}`))
		if err != nil || len(b.Invalid) != 1 || b.Invalid[0].Status != Rejected || !strings.Contains(b.Invalid[0].Error, c.want) ||
			len(b.Entries) != 1 || b.Entries[0].ID != "S001-T01-01KX0000000000000000000005" {
			t.Errorf("DecodeBatch(%s): %+v, %v; want it rejected with %q and the good entry kept", c.in, b, err, c.want)
		}
	}
	// A malformed batch is an error naming the entry.
	for _, c := range []struct{ in, want string }{
		{`{"till_id":"S001-T01","entries":[],"extra":1}`, `unknown field "extra"`},
		{`{"till_id":"S001-T01","entries":[{"id":"x","points":{}}]}`, `entries[0]`},
		{`{"till_id":"S001-T01","entries":[` + good + `,` + good + `]}`, `twice in the batch`},
		{`{"till_id":"","entries":[]}`, `empty till_id`},
	} {
		if _, err := DecodeBatch([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeBatch(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
	if b, err := DecodeBatch([]byte(seedBatch)); err != nil || len(b.Entries) != 2 || b.Entries[1].Prev != b.Entries[0].ID {
		t.Fatalf("seed batch: %+v, %v", b, err)
	}
}
