package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// batchEnvelope is what DecodeBatch's strict path decodes a batch into.
type batchEnvelope struct {
	TillID  string  `json:"till_id"`
	Entries []Entry `json:"entries"`
}

// decodeBatchNoScan is DecodeBatch with the scanner off: its encoding/json
// path alone, the reference the scanner must not change.
func decodeBatchNoScan(data []byte) (*Batch, error) {
	var whole batchEnvelope
	if err := strictDecode(data, &whole); err != nil {
		return decodeBatchByEntry(data)
	}
	return checkBatch(whole.TillID, whole.Entries)
}

// scanIsDecode fails t unless scanBatch either declines data or gives
// exactly what strictDecode gives (which must take it), and unless
// DecodeBatch gives the same batch and error as with the scanner off; it
// reports whether scanBatch took data.
func scanIsDecode(t testing.TB, data []byte) bool {
	t.Helper()
	till, entries, ok := scanBatch(data)
	if ok {
		var want batchEnvelope
		if err := strictDecode(data, &want); err != nil {
			t.Fatalf("scanBatch took a batch encoding/json refuses (%v):\n%.600q", err, data)
		}
		if got := (batchEnvelope{till, entries}); !reflect.DeepEqual(got, want) {
			t.Fatalf("scanBatch and encoding/json differ:\n%#v\n%#v\n%.600q", got, want, data)
		}
	}
	got, err := DecodeBatch(data)
	want, wantErr := decodeBatchNoScan(data)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeBatch differs with the scanner on:\n%v %+v\n%v %+v\n%.600q", err, got, wantErr, want, data)
	}
	return ok
}

const batchTill = "S001-T01"

func batchID(n int) string { return fmt.Sprintf("%s-01KX%022d", batchTill, n) }

// realisticEntries is a till's day: accruals creating lots (some
// expiring, some active later), redemptions naming lots, returns'
// reversals with written-off points and withheld money, notes in
// Cyrillic, fiscal document numbers and signs, created_at with
// nanoseconds in UTC and in the till's zone.
func realisticEntries(r *rand.Rand, n int) []Entry {
	msk := time.FixedZone("MSK", 3*3600)
	zones := []*time.Location{time.UTC, msk, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -3*3600)}
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, msk)
	notes := []string{"", "возврат по чеку", "Списание: истёк срок", "акция «Осень»", "карта утеряна, перевыпуск"}
	var out []Entry
	var lots []string
	prev := ""
	for i := 1; i <= n; i++ {
		id := batchID(i)
		at = at.Add(time.Duration(r.IntN(600)) * time.Second).Add(time.Duration(r.IntN(1e9)))
		e := Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: fmt.Sprintf("S001-T01-chk-%d", i/2),
			CardCode: fmt.Sprintf("29%011d", r.IntN(5000)), CreatedAt: at.In(zones[r.IntN(len(zones))]),
			Note: notes[r.IntN(len(notes))]}}
		if r.IntN(3) > 0 {
			e.FD, e.FP = uint32(1+r.IntN(99999)), uint32(r.Uint32())
		}
		switch k := r.IntN(10); {
		case k < 6 || len(lots) == 0: // accrual creating a lot
			pts := decimal.New(int64(1+r.IntN(50000)), -int32(r.IntN(3)))
			e.Kind, e.Points, e.PurchaseKop = store.KindAccrual, pts, int64(100+r.IntN(10000000))
			l := store.LotChange{LotID: id, Delta: pts, Create: true, ActiveFrom: at.Add(14 * 24 * time.Hour).UTC()}
			if r.IntN(2) == 0 {
				l.ExpiresAt = at.AddDate(0, 6, 0).In(msk)
			}
			e.Lots = []store.LotChange{l}
			lots = append(lots, id)
		case k < 9: // redemption from one or two lots
			a := decimal.New(-int64(1+r.IntN(500)), 0)
			e.Kind, e.AmountKop = store.KindRedemption, -a.IntPart()*100
			e.Lots = []store.LotChange{{LotID: lots[r.IntN(len(lots))], Delta: a}}
			e.Points = a
			if other := lots[r.IntN(len(lots))]; other != e.Lots[0].LotID {
				b := decimal.New(-int64(1+r.IntN(50)), -1)
				e.Lots = append(e.Lots, store.LotChange{LotID: other, Delta: b})
				e.Points = a.Add(b)
			}
		default: // a return's reversal
			e.Kind, e.Points = store.KindReversal, decimal.New(-int64(1+r.IntN(300)), 0)
			e.PurchaseKop, e.AmountKop = -int64(r.IntN(500000)), -int64(r.IntN(3000))
			e.WithheldKop, e.WrittenOff = int64(r.IntN(2)*r.IntN(5000)), decimal.New(int64(r.IntN(2)*r.IntN(900)), -2)
			e.Lots = []store.LotChange{{LotID: lots[r.IntN(len(lots))], Delta: e.Points}}
		}
		out = append(out, e)
		prev = id
	}
	return out
}

func marshalBatch(t testing.TB, till string, entries []Entry) []byte {
	t.Helper()
	data, err := json.Marshal(Batch{TillID: till, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestScanBatchRealistic: the batches tills send are read by hand, the
// same as encoding/json reads them, and pass CheckEntry as before.
func TestScanBatchRealistic(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 2, 10, 100, 500} {
		data := marshalBatch(t, batchTill, realisticEntries(r, n))
		if !scanIsDecode(t, data) {
			t.Fatalf("a realistic batch of %d was not read by hand:\n%.600s", n, data)
		}
		b, err := DecodeBatch(data)
		if err != nil || len(b.Entries) != n || len(b.Invalid) != 0 {
			t.Fatalf("batch of %d: %v, %d entries, invalid %+v", n, err, len(b.Entries), b.Invalid)
		}
	}
	// The seed batch of FuzzDecodeBatch, white space and all.
	if !scanIsDecode(t, []byte(seedBatch)) {
		t.Error("the seed batch was not read by hand")
	}
}

// batchEntry is one entry as JSON with its fields given; fields replaces
// the default of the keys it names and adds the others.
func batchEntry(fields ...string) string {
	def := [][2]string{
		{"id", `"` + batchID(1) + `"`}, {"check_id", `"c1"`}, {"card_code", `"2900000000018"`}, {"kind", `"accrual"`},
		{"points", `"10"`}, {"amount_kop", `0`}, {"purchase_kop", `10000`},
		{"lots", `[{"lot_id":"` + batchID(1) + `","delta":"10","create":true,"active_from":"2026-12-07T12:00:00Z"}]`},
		{"created_at", `"2026-11-23T12:00:00.123456789+03:00"`}, {"acked", `false`}, {"prev", `""`},
	}
	var extra []string
	for i := 0; i+1 < len(fields); i += 2 {
		found := false
		for j := range def {
			if def[j][0] == fields[i] {
				def[j][1], found = fields[i+1], true
			}
		}
		if !found {
			extra = append(extra, `"`+fields[i]+`":`+fields[i+1])
		}
	}
	var parts []string
	for _, kv := range def {
		if kv[1] != "-" { // "-" leaves the key out
			parts = append(parts, `"`+kv[0]+`":`+kv[1])
		}
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}

func oneEntryBatch(fields ...string) []byte {
	return []byte(`{"till_id":"` + batchTill + `","entries":[` + batchEntry(fields...) + `]}`)
}

func lotBatch(lot string) []byte { return oneEntryBatch("lots", "["+lot+"]") }

// batchCases are inputs where a hand reader is likely to part from
// encoding/json: take must be read by hand, decline must not be.
func batchCases() []nastyCase {
	return []nastyCase{
		{"plain", oneEntryBatch(), take},
		{"every field", oneEntryBatch("withheld_kop", "150", "written_off", `"2.5"`, "note", `"возврат: «брак»"`, "fd", "12345", "fp", "4294967295", "acked", "true"), take},
		{"reversal with written_off and withheld_kop", oneEntryBatch("kind", `"reversal"`, "points", `"-5"`, "withheld_kop", "990", "written_off", `"0.75"`,
			"lots", `[{"lot_id":"L-1","delta":"-5"}]`, "purchase_kop", "-125380", "amount_kop", "-500"), take},
		{"lot with expires_at", lotBatch(`{"lot_id":"L-1","delta":"10","create":true,"active_from":"2026-12-07T12:00:00+03:00","expires_at":"2027-05-22T23:59:59.999999999-05:30"}`), take},
		{"empty batch", []byte(`{"till_id":"S001-T01","entries":[]}`), take},
		{"no entries key", []byte(`{"till_id":"S001-T01"}`), take},
		{"empty object", []byte(`{}`), take},
		{"empty lots", oneEntryBatch("lots", "[]"), take},
		{"no lots", oneEntryBatch("lots", "-", "kind", `"reversal"`), take},
		{"entries before till_id", []byte(`{"entries":[` + batchEntry() + `],"till_id":"S001-T01"}`), take},
		{"white space everywhere", []byte(" \r\n\t{ \"till_id\" :\"S001-T01\" , \"entries\" : [ { \"id\" : \"" + batchID(1) +
			"\" , \"points\" : \"1\" , \"amount_kop\" : -0 , \"acked\" : true , \"lots\" : [ { \"lot_id\" : \"a\" , \"delta\" : \"1\" , \"create\" : false } ] } ] } \n\t"), take},
		{"U+2028 raw in a note", oneEntryBatch("note", "\"a\u2028b\u2029c\""), take},
		{"four-byte UTF-8 in a note", oneEntryBatch("note", `"чек 😀 𝄞"`), take},
		{"DEL raw in a note", oneEntryBatch("note", "\"a\x7f\""), take},
		{"Unicode minus in points", oneEntryBatch("points", "\"\u221210\""), take},
		{"points with an exponent", oneEntryBatch("points", `"1e3"`), take},
		{"points 1e9999", oneEntryBatch("points", `"1e9999"`), take},
		{"fd zero", oneEntryBatch("fd", "0", "fp", "0"), take},
		{"largest int64", oneEntryBatch("purchase_kop", "9223372036854775807", "amount_kop", "-9223372036854775808"), take},
		{"zero time", oneEntryBatch("created_at", `"0001-01-01T00:00:00Z"`), take},
		{"unknown kind", oneEntryBatch("kind", `"gift"`), take},
		{"id twice across entries", []byte(`{"till_id":"S001-T01","entries":[` + batchEntry() + `,` + batchEntry() + `]}`), take},

		{"unknown top key", []byte(`{"till_id":"S001-T01","colour":"red","entries":[]}`), decline},
		{"unknown entry key", oneEntryBatch("colour", `"red"`), decline},
		{"unknown lot key", lotBatch(`{"lot_id":"a","delta":"1","colour":"red"}`), decline},
		{"till_id in upper case", []byte(`{"TILL_ID":"S001-T01","entries":[]}`), decline},
		{"entry key capitalised", oneEntryBatch("id", "-", "ID", `"`+batchID(1)+`"`), decline},
		{"lot key capitalised", lotBatch(`{"Lot_id":"a","delta":"1"}`), decline},
		{"Kelvin sign in kind", oneEntryBatch("kind", "-", "\u212aind", `"accrual"`), decline},
		{"long s in lots", oneEntryBatch("lots", "-", "lotſ", `[]`), decline},
		{"till_id twice", []byte(`{"till_id":"S001-T01","till_id":"S001-T02","entries":[]}`), decline},
		{"entries twice", []byte(`{"till_id":"S001-T01","entries":[` + batchEntry() + `],"entries":[]}`), decline},
		{"entry key twice", bytes.Replace(oneEntryBatch(), []byte(`"kind":"accrual"`), []byte(`"kind":"accrual","kind":"reversal"`), 1), decline},
		{"lot key twice", lotBatch(`{"lot_id":"a","delta":"1","delta":"2"}`), decline},
		{"entries null", []byte(`{"till_id":"S001-T01","entries":null}`), decline},
		{"till_id null", []byte(`{"till_id":null,"entries":[]}`), decline},
		{"null entry", []byte(`{"till_id":"S001-T01","entries":[null]}`), decline},
		{"lots null", oneEntryBatch("lots", "null"), decline},
		{"null lot", oneEntryBatch("lots", "[null]"), decline},
		{"points null", oneEntryBatch("points", "null"), decline},
		{"created_at null", oneEntryBatch("created_at", "null"), decline},
		{"note null", oneEntryBatch("note", "null"), decline},
		{"acked null", oneEntryBatch("acked", "null"), decline},
		{"fd null", oneEntryBatch("fd", "null"), decline},
		{"escape in till_id", []byte(`{"till_id":"S001\u002dT01","entries":[]}`), decline},
		{"escape in a note", oneEntryBatch("note", `"\u003cb\u003e"`), decline},
		{"escaped quote in a check id", oneEntryBatch("check_id", `"c\"1"`), decline},
		{"escape in a key", oneEntryBatch("note", "-", `not\u0065`, `"x"`), decline},
		{"escape in a lot id", lotBatch(`{"lot_id":"a\/b","delta":"1"}`), decline},
		{"raw tab in a note", oneEntryBatch("note", "\"a\tb\""), decline},
		{"invalid UTF-8 in a note", oneEntryBatch("note", "\"a\xffb\""), decline},
		{"surrogate half in UTF-8", oneEntryBatch("note", "\"\xed\xa0\x80\""), decline},
		{"amount_kop 1.0", oneEntryBatch("amount_kop", "1.0"), decline},
		{"amount_kop 1e2", oneEntryBatch("amount_kop", "1e2"), decline},
		{"amount_kop leading zero", oneEntryBatch("amount_kop", "01"), decline},
		{"amount_kop as a string", oneEntryBatch("amount_kop", `"5"`), decline},
		{"amount_kop past int64", oneEntryBatch("amount_kop", "9223372036854775808"), decline},
		{"purchase_kop below int64", oneEntryBatch("purchase_kop", "-9223372036854775809"), decline},
		{"amount_kop true", oneEntryBatch("amount_kop", "true"), decline},
		{"fd negative", oneEntryBatch("fd", "-1"), decline},
		{"fd minus zero", oneEntryBatch("fd", "-0"), decline},
		{"fp past uint32", oneEntryBatch("fp", "4294967296"), decline},
		{"fd with fraction", oneEntryBatch("fd", "7.5"), decline},
		{"points as a number", oneEntryBatch("points", "10"), decline},
		{"points not a number", oneEntryBatch("points", `"ten"`), decline},
		{"points empty", oneEntryBatch("points", `""`), decline},
		{"delta as a number", lotBatch(`{"lot_id":"a","delta":1}`), decline},
		{"written_off bad", oneEntryBatch("written_off", `"1,5"`), decline},
		{"created_at without zone", oneEntryBatch("created_at", `"2026-11-23T12:00:00"`), decline},
		{"created_at month 13", oneEntryBatch("created_at", `"2026-13-23T12:00:00Z"`), decline},
		{"created_at as a number", oneEntryBatch("created_at", `1700000000`), decline},
		{"active_from 24th hour", lotBatch(`{"lot_id":"a","delta":"1","active_from":"2026-01-01T24:00:00Z"}`), decline},
		{"created_at lower-case t", oneEntryBatch("created_at", `"2026-11-23t12:00:00z"`), either},
		{"acked as a string", oneEntryBatch("acked", `"false"`), decline},
		{"acked 0", oneEntryBatch("acked", `0`), decline},
		{"create as a string", lotBatch(`{"lot_id":"a","delta":"1","create":"true"}`), decline},
		{"acked truex", oneEntryBatch("acked", `truex`), decline},
		{"entry a number", []byte(`{"till_id":"S001-T01","entries":[5]}`), decline},
		{"entries an object", []byte(`{"till_id":"S001-T01","entries":{}}`), decline},
		{"lots an object", oneEntryBatch("lots", `{}`), decline},
		{"kind a number", oneEntryBatch("kind", `1`), decline},
		{"top-level array", []byte(`[{"till_id":"S001-T01"}]`), decline},
		{"top-level null", []byte(`null`), decline},
		{"trailing garbage", append(oneEntryBatch(), " x"...), decline},
		{"trailing object", append(oneEntryBatch(), "{}"...), decline},
		{"trailing NUL", append(oneEntryBatch(), 0), decline},
		{"trailing white space", append(oneEntryBatch(), " \n\r\t"...), take},
		{"trailing form feed", append(oneEntryBatch(), '\f'), decline},
		{"BOM", append([]byte("\xef\xbb\xbf"), oneEntryBatch()...), decline},
		{"trailing comma in entries", []byte(`{"till_id":"S001-T01","entries":[` + batchEntry() + `,]}`), decline},
		{"trailing comma in an entry", bytes.Replace(oneEntryBatch(), []byte(`"prev":""}`), []byte(`"prev":"",}`), 1), decline},
		{"missing comma between entries", []byte(`{"till_id":"S001-T01","entries":[` + batchEntry() + batchEntry() + `]}`), decline},
		{"unterminated", oneEntryBatch()[:100], decline},
		{"empty", nil, decline},
	}
}

func TestScanBatchCases(t *testing.T) {
	for _, c := range batchCases() {
		t.Run(c.name, func(t *testing.T) {
			took := scanIsDecode(t, c.data)
			switch {
			case c.want == take && !took:
				t.Errorf("declined what it should read:\n%.400q", c.data)
			case c.want == decline && took:
				t.Errorf("read by hand what it cannot be sure of:\n%.400q", c.data)
			}
		})
	}
}

// randEntry is an entry with every field drawn, its strings nasty.
func randEntry(r *rand.Rand) Entry {
	dec := func() decimal.Decimal {
		return []decimal.Decimal{{}, decimal.New(0, -3), decimal.New(15, -1), decimal.New(-7, 0), decimal.New(1, 9),
			decimal.New(123456789, -9), decimal.RequireFromString("123456789012345678901234567890.5"), decimal.New(5, -30)}[r.IntN(8)]
	}
	tm := func() time.Time {
		switch r.IntN(40) {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9:
			return time.Time{}
		case 10: // json.Marshal refuses it
			return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		case 11: // json.Marshal writes the offset without its seconds
			return edgeTime(r).In(time.FixedZone("LMT", 2*3600+17))
		}
		return edgeTime(r)
	}
	ints := []int64{0, 1, -1, 100, 9223372036854775807, -9223372036854775808}
	e := Entry{Prev: edgeText(r), Entry: store.Entry{ID: edgeText(r), CheckID: edgeText(r), CardCode: edgeText(r),
		Kind: store.Kind(edgeText(r)), Points: dec(), AmountKop: ints[r.IntN(6)], PurchaseKop: ints[r.IntN(6)],
		WithheldKop: ints[r.IntN(6)], WrittenOff: dec(), Note: edgeText(r), FD: []uint32{0, 1, 4294967295}[r.IntN(3)],
		FP: r.Uint32() * uint32(r.IntN(2)), CreatedAt: tm(), Acked: r.IntN(2) == 0}}
	if r.IntN(4) == 0 {
		e.Kind = store.KindAccrual
	}
	switch r.IntN(3) {
	case 0:
	case 1:
		e.Lots = []store.LotChange{}
	default:
		for range 1 + r.IntN(3) {
			e.Lots = append(e.Lots, store.LotChange{LotID: edgeText(r), Delta: dec(), Create: r.IntN(2) == 0, ActiveFrom: tm(), ExpiresAt: tm()})
		}
	}
	return e
}

// mutateBatch changes a batch in one of the ways a hand reader may get
// wrong.
func mutateBatch(r *rand.Rand, data []byte) []byte {
	keys := []string{`"till_id"`, `"entries"`, `"id"`, `"check_id"`, `"card_code"`, `"kind"`, `"points"`, `"amount_kop"`,
		`"purchase_kop"`, `"withheld_kop"`, `"written_off"`, `"note"`, `"fd"`, `"fp"`, `"lots"`, `"created_at"`, `"acked"`,
		`"prev"`, `"lot_id"`, `"delta"`, `"create"`, `"active_from"`, `"expires_at"`}
	k := keys[r.IntN(len(keys))]
	i := bytes.Index(data, []byte(k+":"))
	if i < 0 {
		return data
	}
	at := i + len(k) + 1 // the value's first byte
	splice := func(from, to int, with string) []byte {
		return append(append(append([]byte{}, data[:from]...), with...), data[to:]...)
	}
	valueEnd := func() int {
		s := append([]byte{}, data[at:]...)
		if n := bytes.IndexAny(s, ",}]"); n >= 0 && s[0] != '[' && s[0] != '"' {
			return at + n
		}
		if s[0] == '"' {
			if n := bytes.IndexByte(s[1:], '"'); n >= 0 {
				return at + n + 2
			}
		}
		return at
	}
	switch r.IntN(9) {
	case 0: // the key in another case or a Unicode fold
		alt := []string{strings.ToUpper(k), strings.ReplaceAll(k, "k", "\u212a"), strings.ReplaceAll(k, "s", "ſ"),
			`"` + strings.ToUpper(k[1:2]) + k[2:]}[r.IntN(4)]
		return splice(i, i+len(k), alt)
	case 1: // the key twice
		return splice(i, i, k+":"+[]string{`"x"`, `1`, `null`, `[]`, `true`}[r.IntN(5)]+",")
	case 2: // another value
		v := []string{"null", "0", "-0", "1.5", "1e2", "01", "-1", "4294967296", "9223372036854775808", `""`, `"x"`, `"5"`,
			`"1e3"`, "true", "false", "[]", "{}", `"2026-01-01T00:00:00Z"`, `"\u0041"`, `"` + "\xff" + `"`, `"0001-01-01T00:00:00Z"`}[r.IntN(21)]
		return splice(at, valueEnd(), v)
	case 3: // an escape in a string
		if data[at] != '"' {
			return data
		}
		return splice(at+1, at+1, []string{`\u0041`, `\"`, `\\`, `\/`, `\n`, `\ud800`, `\x`}[r.IntN(7)])
	case 4: // trailing bytes
		return append(append([]byte{}, data...), []string{" ", "x", "{}", "\x00", "\n\n", ",", "]"}[r.IntN(7)]...)
	case 5: // white space, some of it not JSON's
		return splice(at, at, []string{" ", "\n", "\t", "\r", "\f", "\v", "\u00a0"}[r.IntN(7)])
	case 6: // a byte cut out
		j := r.IntN(len(data))
		return splice(j, j+1, "")
	case 7: // an unknown key
		return splice(i, i, `"colour":"red",`)
	default: // the value's digits pushed past a bound
		return splice(valueEnd(), valueEnd(), []string{"0", "9", "00000000000"}[r.IntN(3)])
	}
}

// TestScanBatchRandom: random entries with nasty strings, through
// json.Marshal and random mutations, are read by scanBatch either as
// encoding/json reads them or not at all; those without an escape are
// read by hand.
func TestScanBatchRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	var took, plain, plainTook, mutated int
	for range 3000 {
		var entries []Entry
		for range r.IntN(4) {
			entries = append(entries, randEntry(r))
		}
		if len(entries) == 0 && r.IntN(2) == 0 {
			entries = []Entry{}
		}
		b := Batch{TillID: edgeText(r), Entries: entries}
		data, err := json.Marshal(b)
		if err != nil {
			continue // a time json.Marshal refuses
		}
		ok := scanIsDecode(t, data)
		if ok {
			took++
		}
		// A batch of no entries is written "entries":null, which the
		// scanner declines (tills send [] at least).
		if !bytes.ContainsRune(data, '\\') && entries != nil {
			plain++
			if ok {
				plainTook++
			}
		}
		for range 1 + r.IntN(3) {
			data = mutateBatch(r, data)
			if scanIsDecode(t, data) {
				mutated++
			}
		}
	}
	if plainTook != plain || plain < 300 {
		t.Errorf("only %d of %d batches without an escape were read by hand", plainTook, plain)
	}
	t.Logf("%d read by hand, %d of %d without escapes, %d after mutation", took, plainTook, plain, mutated)
}

// FuzzScanBatch: whatever scanBatch takes, strictDecode takes and reads
// the same, and DecodeBatch gives what it gives with the scanner off.
//
//	go test ./sync/wire/ -run '^$' -fuzz '^FuzzScanBatch$' -fuzztime 60s -parallel 1
func FuzzScanBatch(f *testing.F) {
	f.Add([]byte(seedBatch))
	for _, c := range batchCases() {
		f.Add(c.data)
	}
	r := rand.New(rand.NewPCG(41, 42))
	f.Add(marshalBatch(f, batchTill, realisticEntries(r, 5)))
	for range 30 {
		data, err := json.Marshal(Batch{TillID: batchTill, Entries: []Entry{randEntry(r), randEntry(r)}})
		if err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		scanIsDecode(t, data)
	})
}

// benchBatchBody is a 100-entry batch shaped like head office's ingest
// benchmark's (sync/headoffice benchWorkload): 80 % accruals creating a
// lot, 20 % redemptions of one lot.
func benchBatchBody(b testing.TB) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	type lot struct{ card, id string }
	var lots []lot
	var entries []Entry
	prev := ""
	for seq := 1; seq <= 100; seq++ {
		id := fmt.Sprintf("B000-T01-%026d", seq)
		e := Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: id, CreatedAt: at}}
		if len(lots) > 0 && rng.IntN(5) == 0 {
			l := lots[rng.IntN(len(lots))]
			e.CardCode, e.Kind, e.Points = l.card, store.KindRedemption, decimal.NewFromInt(-1)
			e.Lots = []store.LotChange{{LotID: l.id, Delta: e.Points}}
		} else {
			e.CardCode, e.Kind, e.Points = fmt.Sprintf("31%011d", rng.IntN(100000)), store.KindAccrual, decimal.NewFromInt(10)
			e.PurchaseKop = 10000
			e.Lots = []store.LotChange{{LotID: id, Delta: e.Points, Create: true, ActiveFrom: at}}
			lots = append(lots, lot{e.CardCode, id})
		}
		entries = append(entries, e)
		prev = id
	}
	return marshalBatch(b, "B000-T01", entries)
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := benchBatchBody(b)
	if _, _, ok := scanBatch(data); !ok {
		b.Fatal("the benchmark's batch is not read by hand")
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (*Batch, error)
	}{
		{"scan", DecodeBatch},
		{"encoding-json", decodeBatchNoScan},
		// The decoding alone, without checkBatch's checks.
		{"scan-decode-only", func(data []byte) (*Batch, error) {
			till, entries, _ := scanBatch(data)
			return &Batch{TillID: till, Entries: entries}, nil
		}},
		{"encoding-json-decode-only", func(data []byte) (*Batch, error) {
			var whole batchEnvelope
			err := strictDecode(data, &whole)
			return &Batch{TillID: whole.TillID, Entries: whole.Entries}, err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if bt, err := c.decode(data); err != nil || len(bt.Entries) != 100 {
					b.Fatal(err)
				}
			}
		})
	}
}
