package wire

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
// same batch; the one-pass decoding agrees with the entry-by-entry one.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(seedBatch))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[]}`))
	f.Add([]byte(`{"till_id":"","entries":null}`))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[{"id":"S001-T02-01KX0000000000000000000001"}]}`))
	f.Add([]byte(`{"till_id":"S001-T01","entries":[]} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		slow, slowErr := decodeBatchByEntry(data)
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("one pass: %v; entry by entry: %v", err, slowErr)
		}
		if err != nil {
			return
		}
		if j1, j2 := fmt.Sprintf("%+v", b), fmt.Sprintf("%+v", slow); j1 != j2 {
			t.Fatalf("one pass and entry by entry differ:\n%s\n%s", j1, j2)
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
	f.Add([]byte(`{"cursor":"e17:904","reset":true,"replica":{"version":1}}`))
	f.Add([]byte(`{"cursor":"905","replica":{"version":1,"folded_through":{"S001-T01":"S001-T01-01KX0000000000000000000009"}},"journal_held":"S001-T01-01KX0000000000000000000002"}`))
	f.Add([]byte(`{"cursor":"904","more":true,"next":"77","replica":{"version":1,"products":[{"id":"2","name":"b","group":"g","vat":"vat20","colour":"red"}],"cards":[{"code":"1","kind":"k","state":"active","debt":"x"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fd, err := DecodeFeed(data)
		if err != nil {
			return
		}
		// Values are the till's import's to check (store.ImportFeed); the
		// decoder loses no record: what ParseReplica reads whole, it reads
		// whole with nothing left out, and every record it leaves out is
		// one that does not decode on its own.
		var raw struct {
			Replica json.RawMessage `json:"replica"`
		}
		if json.Unmarshal(data, &raw) == nil {
			if r, err := store.ParseReplica(raw.Replica, "json"); err == nil &&
				(len(fd.Undecoded) != 0 || !reflect.DeepEqual(counts(r), counts(fd.Replica))) {
				t.Fatalf("a replica ParseReplica reads whole lost records: %d undecoded, counts %v, want %v", len(fd.Undecoded), counts(fd.Replica), counts(r))
			}
		}
		for _, u := range fd.Undecoded {
			var m map[string]any
			if u.Error == "" || json.Unmarshal(u.Record, &m) != nil && u.Section == "" {
				t.Fatalf("undecoded record without its error or section: %+v", u)
			}
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
		// Values: the kind's sign, the bound, at most 9 decimal places.
		{entry("S001-T01-01KX0000000000000000000001", "redemption", "1000", "", ""), `redemption of +1000 points: a redemption cannot add points`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "-5", "", ""), `accrual of -5 points`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "1e9999", "", ""), `more than 1000000000 in magnitude`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "-1000000001", "", ""), `points -1000000001: more than 1000000000`},
		// A huge number is quoted short, not as its 401 digits.
		{entry("S001-T01-01KX0000000000000000000001", "redemption", "-1e400", "", ""), `points -1e+400: more than 1000000000`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1234567890123456789012345678901234567890", "", ""),
			`points 1.234567890…e+39: more than 1000000000`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1e-400", "", ""), `points 1e-400: more than 9 decimal places`},
		// Corrections are head office's (ERP), never a till's.
		{entry("S001-T01-01KX0000000000000000000001", "correction", "5", "", ""), `kind "correction": only head office writes corrections`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1e-10", "", ""), `more than 9 decimal places`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "0", `,"lots":[{"lot_id":"a","delta":"2e9"},{"lot_id":"b","delta":"-2e9"}]`, ""),
			`lot a delta 2000000000: more than 1000000000`},
		// Lot changes a till never writes: a redemption adding to a lot or
		// creating one, an accrual changing an existing lot, the debt named
		// but by a return's debit, an id the replica feed cannot carry.
		{entry("S001-T01-01KX0000000000000000000001", "redemption", "0", `,"lots":[{"lot_id":"a","delta":"-1"},{"lot_id":"b","delta":"1"}]`, ""),
			`lot b: a redemption only takes points from lots`},
		{entry("S001-T01-01KX0000000000000000000001", "redemption", "0", `,"lots":[{"lot_id":"a","delta":"-1"},{"lot_id":"b","delta":"1","create":true,"active_from":"2026-01-01T00:00:00Z"}]`, ""),
			`lot b: a redemption only takes points from lots`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1", `,"lots":[{"lot_id":"a","delta":"1"}]`, ""), `lot a: an accrual only creates lots`},
		{entry("S001-T01-01KX0000000000000000000001", "redemption", "-1", `,"lots":[{"lot_id":"~debt","delta":"-1"}]`, ""),
			`lot ~debt: only a return's debit beyond the balance names it`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "1", `,"lots":[{"lot_id":"~debt","delta":"1"}]`, ""),
			`lot ~debt: only a return's debit beyond the balance names it`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "1", `,"lots":[{"lot_id":"~x","delta":"1"}]`, ""), `lot id "~x": not a replica lot id`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "1", `,"lots":[{"lot_id":"a","delta":"1","create":true,"active_from":"2026-01-01T00:00:00Z"}]`, ""),
			`lot a: a return gives points back to the lots its sale spent and takes them from lots; it creates none`},
		// Money and times every till can carry: a purchase past a check's
		// largest sum would overflow the card's history on every till; a
		// zero time or one at year 9999 gives a lot no feed can carry.
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "0", `,"purchase_kop":9223372036854775807`, ""),
			`purchase_kop 9223372036854775807: more than 1000000000000`},
		{entry("S001-T01-01KX0000000000000000000001", "reversal", "-1", `,"amount_kop":-1000000000001`, ""), `amount_kop -1000000000001: more than`},
		{strings.Replace(entry("S001-T01-01KX0000000000000000000001", "accrual", "1", "", ""), "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", 1),
			`created_at 0001-01-01T00:00:00Z: outside 2000..2198`},
		{entry("S001-T01-01KX0000000000000000000001", "accrual", "1", `,"lots":[{"lot_id":"a","delta":"1","create":true,"active_from":"9999-12-31T23:59:59Z","expires_at":"9999-12-31T23:59:59Z"}]`, ""),
			`lot a active_from 9999-12-31T23:59:59Z: outside 2000..2198`},
	} {
		b, err := DecodeBatch([]byte(`{"till_id":"S001-T01","entries":[` + c.in + `,` + good + `]}`))
		if err != nil || len(b.Invalid) != 1 || b.Invalid[0].Status != Rejected || !strings.Contains(b.Invalid[0].Error, c.want) ||
			len(b.Entries) != 1 || b.Entries[0].ID != "S001-T01-01KX0000000000000000000005" {
			t.Errorf("DecodeBatch(%s): %+v, %v; want it rejected with %q and the good entry kept", c.in, b, err, c.want)
		}
	}
	// Reversals go either way; the bound itself is allowed.
	for _, c := range []struct{ kind, points, lots string }{{"reversal", "5", ""}, {"reversal", "-5", ""}, {"reversal", "-1000000000", ""},
		{"reversal", "1000000000", ""}, {"redemption", "-0.5", ""}, {"accrual", "0", ""},
		// What a till's return writes: spent points back, the accrual and the debt taken.
		{"reversal", "-5", `,"lots":[{"lot_id":"L-1","delta":"10"},{"lot_id":"S001-T01-01KX0000000000000000000000","delta":"-10"},{"lot_id":"~debt","delta":"-5"}]`}} {
		in := entry("S001-T01-01KX0000000000000000000001", c.kind, c.points, c.lots, "")
		if b, err := DecodeBatch([]byte(`{"till_id":"S001-T01","entries":[` + in + `]}`)); err != nil || len(b.Invalid) != 0 || len(b.Entries) != 1 {
			t.Errorf("DecodeBatch(%s): %+v, %v; want it kept", in, b, err)
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

// TestDecodeFeedLeavesOutBadRecords: a record that does not decode (an
// unknown field, a number that is not one) is left out and named with its
// error; the records around it decode; a malformed header still refuses
// the feed.
func TestDecodeFeedLeavesOutBadRecords(t *testing.T) {
	f, err := DecodeFeed([]byte(`{"cursor":"7","replica":{"version":1,
		"products":[{"id":"1","name":"a","group":"g","vat":"vat20"},{"id":"2","name":"b","group":"g","vat":"vat20","colour":"red"}],
		"lots":[{"id":"L1","card":"c","points":"x5","accrued_at":"2026-01-01T00:00:00Z"},{"id":"L2","card":"c","points":"5","accrued_at":"2026-01-01T00:00:00Z"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Replica.Products) != 1 || f.Replica.Products[0].ID != "1" || len(f.Replica.Lots) != 1 || f.Replica.Lots[0].ID != "L2" {
		t.Fatalf("kept %+v %+v, want product 1 and lot L2", f.Replica.Products, f.Replica.Lots)
	}
	if len(f.Undecoded) != 2 || f.Undecoded[0].Section != "lots" || !strings.Contains(f.Undecoded[0].Key, "id L1") ||
		f.Undecoded[1].Section != "products" || !strings.Contains(f.Undecoded[1].Error, `unknown field "colour"`) || len(f.Undecoded[1].Record) == 0 {
		t.Fatalf("undecoded %+v", f.Undecoded)
	}
	for _, bad := range []string{
		`{"cursor":"7","replica":{"version":"one"}}`,
		`{"cursor":"7","replica":{"version":1,"gifts":[]}}`,
		`{"cursor":"7","replica":{"version":1,"cards":{}}}`,
	} {
		if _, err := DecodeFeed([]byte(bad)); err == nil {
			t.Errorf("DecodeFeed(%s) accepted", bad)
		}
	}
}

// FuzzDecodeCardAnswer: whatever head office (or something posing as it)
// answers to a till asking for cards, a decoded answer names only cards
// asked for, in its records and its unknown list, and carries no watermark
// and no catalog record.
func FuzzDecodeCardAnswer(f *testing.F) {
	f.Add([]byte(`{"scope":"home","replica":{"version":1,"cards":[{"code":"29","kind":"bonus","state":"active"}],"lots":[{"id":"L1","card":"29","points":"5","remaining":"5","accrued_at":"2026-01-01T00:00:00Z"}]}}`))
	f.Add([]byte(`{"scope":"all","replica":{"version":1},"unknown":["29"]}`))
	f.Add([]byte(`{"scope":"home","replica":{"version":1,"folded_through":{"S001-T01":"S001-T01-01KX0000000000000000000002"}}}`))
	f.Add([]byte(`{"scope":"home","replica":{"version":1,"cards":[{"code":"30","kind":"bonus","state":"active"}]}}`))
	f.Add([]byte(`{"scope":"home","replica":{"version":1,"products":[{"id":"2","name":"b","group":"g","vat":"vat20"}]}}`))
	f.Add([]byte(`{"replica":null}`))
	asked := []string{"29", "31"}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeCardAnswer(data, asked)
		if err != nil {
			return
		}
		r := a.Replica
		if len(r.FoldedThrough) > 0 || len(r.Stores)+len(r.Groups)+len(r.Products)+len(r.Programs)+len(r.Promotions)+len(r.CardKinds)+len(r.CardKeys) > 0 {
			t.Fatalf("decoded answer carries more than cards and lots: %+v", r)
		}
		for _, c := range r.Cards {
			if !slices.Contains(asked, c.Code) {
				t.Fatalf("decoded answer carries card %q, not asked for", c.Code)
			}
		}
		for _, l := range r.Lots {
			if !slices.Contains(asked, l.Card) {
				t.Fatalf("decoded answer carries a lot of card %q, not asked for", l.Card)
			}
		}
		for _, u := range a.Unknown {
			if !slices.Contains(asked, u) {
				t.Fatalf("decoded answer names %q unknown, not asked for", u)
			}
		}
	})
}
