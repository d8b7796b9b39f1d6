package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has installed

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// edgeCanonical is the content bytes head office hashes for an entry as
// this build writes them (headoffice.canonicalEntry: AppendEntry of the
// entry in UTC, json.Marshal when it declines) and as the build before
// it wrote them (json.Marshal of the entry in UTC, always).
func edgeCanonical(t testing.TB, e Entry) (now, before []byte) {
	t.Helper()
	e.Entry = e.Entry.InUTC()
	before, errBefore := json.Marshal(e)
	now, ok := AppendEntry(nil, e)
	if !ok {
		var err error
		now, err = json.Marshal(e)
		if (err == nil) != (errBefore == nil) {
			t.Fatalf("json.Marshal of one entry both fails and not: %v / %v", err, errBefore)
		}
	}
	return now, before
}

// edgeNotes are notes (and check ids, lot ids) with every kind of character
// a till's cashier or a bug may put there.
var edgeNotes = []string{
	"", "возврат по чеку №12", "<script>alert('x')</script> & co", "tab\there\nnewline\r\n", "quote \" and \\ backslash",
	"\u2028line\u2029para", "\x7fDEL", "\x01\x1f controls", "😀 emoji 𝄞", "\uFFFD replacement", "\xff broken", "a\xc0\x80b",
	"\xed\xa0\x80 surrogate", "\xe2\x80 cut", "NUL\x00inside", "ſ long s \u212a kelvin", "/slash", "`~!@#$%^*()_+-={}[]|:;'?,.",
}

// edgeDecimals are points with the values and exponents that print oddly.
func edgeDecimals() []decimal.Decimal {
	ds := []decimal.Decimal{{}, decimal.New(0, -3), decimal.New(0, 5), decimal.NewFromFloat(math.Copysign(0, -1)),
		decimal.RequireFromString("-0"), decimal.RequireFromString("-0.000"), decimal.RequireFromString("1.50"),
		decimal.RequireFromString("-12.340"), decimal.RequireFromString("1e-20"), decimal.RequireFromString("-5E+3"),
		decimal.RequireFromString("123456789012345678901234567890.123456789"), decimal.New(1, 1000), decimal.New(-1, -1000),
		decimal.New(math.MaxInt64, -9), decimal.New(math.MinInt64, 3), decimal.NewFromFloat(0.1), decimal.NewFromFloat(1e-7),
		decimal.RequireFromString("0.000000001"), decimal.RequireFromString("999999999999.999999999"),
	}
	return ds
}

// edgeTimes are times in zones whose offsets have seconds (local mean time
// before 1880 or 1920), half and quarter hours, ±14 h, the local zone,
// with a monotonic reading, at the ends of the years json.Marshal writes.
func edgeTimes(t testing.TB) []time.Time {
	t.Helper()
	load := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatalf("zone %s: %v", name, err)
		}
		return l
	}
	msk, kolkata, stjohns, chatham := load("Europe/Moscow"), load("Asia/Kolkata"), load("America/St_Johns"), load("Pacific/Chatham")
	monrovia, kiritimati, lordHowe := load("Africa/Monrovia"), load("Pacific/Kiritimati"), load("Australia/Lord_Howe")
	ts := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Now(), time.Now().In(msk),
		time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 12, 0, 0, 100, msk),
		time.Date(2026, 11, 23, 12, 0, 0, 123456789, kolkata), time.Date(2026, 3, 29, 2, 30, 0, 999999999, stjohns),
		time.Date(2026, 4, 5, 3, 0, 0, 10, chatham), time.Date(2026, 4, 5, 1, 45, 0, 1000, lordHowe),
		time.Date(1870, 1, 1, 0, 0, 0, 0, msk), time.Date(1971, 1, 1, 0, 0, 0, 5e8, monrovia),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, kiritimati), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -5*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 3*3600+17)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(23*3600+59*60))),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	return ts
}

// TestAppendEntryOddValues: entries built from every odd note, decimal
// and time above (the decimal on points, written_off and a lot's delta;
// the time on created_at and the lot's times), acked or not, with nil,
// empty and full lots: AppendEntry writes json.Marshal's bytes, as sent
// and in UTC, or declines only where json.Marshal fails; so the digest
// head office stores is the one the build before this one stored.
func TestAppendEntryOddValues(t *testing.T) {
	notes, decs, times := edgeNotes, edgeDecimals(), edgeTimes(t)
	r := rand.New(rand.NewPCG(7, 11))
	n := 0
	check := func(e Entry) {
		t.Helper()
		for _, x := range []Entry{e, {Entry: e.Entry.InUTC(), Prev: e.Prev}} {
			got, ok := AppendEntry([]byte("pre"), x)
			want, err := json.Marshal(x)
			switch {
			case !ok && string(got) != "pre":
				t.Fatalf("declined but appended %q", got)
			case !ok && err == nil:
				t.Fatalf("declined an entry json.Marshal writes: %s", want)
			case ok && err != nil:
				t.Fatalf("wrote an entry json.Marshal refuses (%v): %q", err, got)
			case ok && !bytes.Equal(got[3:], want):
				t.Fatalf("AppendEntry differs from json.Marshal:\n got %q\nwant %q", got[3:], want)
			}
			n++
		}
	}
	for i, note := range notes {
		for j, d := range decs {
			for k, at := range times {
				e := Entry{Prev: notes[(i+k)%len(notes)], Entry: store.Entry{ID: note, CheckID: notes[(i+j)%len(notes)], CardCode: note,
					Kind: store.Kind(notes[(j+k)%len(notes)]), Points: d, AmountKop: r.Int64() - math.MaxInt64/2,
					PurchaseKop: []int64{0, -1, math.MinInt64, math.MaxInt64}[k%4], WithheldKop: []int64{0, 1, -7}[j%3],
					WrittenOff: decs[(j+k)%len(decs)], Note: note, FD: []uint32{0, 1, math.MaxUint32}[k%3],
					FP: []uint32{0, math.MaxUint32, 7}[j%3], CreatedAt: at, Acked: (i+j+k)%2 == 0}}
				switch (i + j + k) % 3 {
				case 0:
					e.Lots = nil
				case 1:
					e.Lots = []store.LotChange{}
				default:
					e.Lots = []store.LotChange{
						{LotID: note, Delta: d.Neg(), Create: true, ActiveFrom: at, ExpiresAt: times[(k+3)%len(times)]},
						{LotID: notes[(k+1)%len(notes)], Delta: decs[(j+1)%len(decs)], ActiveFrom: times[(k+1)%len(times)]},
					}
				}
				check(e)
			}
		}
	}
	t.Logf("%d entries compared", n)
}

// edgeTillBatch is what sync/client's pushBatch sends for the till's
// pending entries: each with its predecessor, acked cleared, through
// json.Marshal of the whole batch.
func edgeTillBatch(t testing.TB, till string, pend []store.PendingEntry) []byte {
	t.Helper()
	b := Batch{TillID: till, Entries: make([]Entry, len(pend))}
	for i, p := range pend {
		b.Entries[i] = Entry{Entry: p.Entry, Prev: p.Prev}
		b.Entries[i].Acked = false
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestTillStoreBatchDecodesAsBefore: entries a real till store journals
// (odd notes, decimals of many digits, fiscal numbers, lots with expiry,
// a clock with nanoseconds in several zones), read back as the sync loop
// reads them (PendingChain: created_at in the process's zone, to the
// millisecond) and pushed as it pushes them: DecodeBatch reads the batch
// as encoding/json alone does, by hand when it has no escape, and every
// entry's content bytes (so its digest) are those the build before this
// one stored.
func TestTillStoreBatchDecodesAsBefore(t *testing.T) {
	ctx := context.Background()
	zones := []*time.Location{time.UTC, time.FixedZone("MSK", 3*3600), time.FixedZone("", 5*3600+45*60), time.FixedZone("", -3*3600-30*60)}
	clock := time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)
	tick := 0
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01", Clock: func() time.Time {
		tick++
		return clock.Add(time.Duration(tick)*time.Second + time.Duration(tick*7919)).In(zones[tick%len(zones)])
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	decs := []string{"10", "0.5", "12.345", "100000000.000000001", "1", "7.10"}
	expires := time.Date(2027, 5, 22, 23, 59, 59, 0, time.FixedZone("", 3*3600))
	for i, note := range edgeNotes {
		if bytes.IndexByte([]byte(note), 0) >= 0 {
			continue // a till's text never holds U+0000 (CheckEntry refuses it)
		}
		pts := decimal.RequireFromString(decs[i%len(decs)])
		acc := store.Entry{CheckID: fmt.Sprintf("chk-%d", i), CardCode: "2900000000018", Kind: store.KindAccrual, Points: pts,
			PurchaseKop: int64(1000 * (i + 1)), Note: note, FD: uint32(i), FP: uint32(i) * 104729,
			Lots: []store.LotChange{{Delta: pts, Create: true, ActiveFrom: clock.Add(14 * 24 * time.Hour), ExpiresAt: expires}}}
		if i%3 == 0 {
			acc.Lots[0].ExpiresAt = time.Time{}
		}
		red := store.Entry{CheckID: acc.CheckID, CardCode: "2900000000018", Kind: store.KindRedemption, Points: pts.Neg(), AmountKop: 100,
			Lots: []store.LotChange{{LotID: "L-old", Delta: pts.Neg()}}}
		rev := store.Entry{CheckID: acc.CheckID, CardCode: "2900000000018", Kind: store.KindReversal, Points: pts, AmountKop: -100,
			WithheldKop: int64(i), WrittenOff: decimal.New(int64(i), -2), Note: note, Lots: []store.LotChange{{LotID: "L-old", Delta: pts}}}
		if _, err := st.Append(ctx, []store.Entry{acc, red}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, []store.Entry{rev}); err != nil {
			t.Fatal(err)
		}
	}
	pend, err := st.PendingChain(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) < 40 {
		t.Fatalf("%d pending entries, want every one journalled", len(pend))
	}
	var scanned, plain int
	for from := 0; from < len(pend); from += 7 {
		part := pend[from:min(from+7, len(pend))]
		data := edgeTillBatch(t, "S001-T01", part)
		if !bytes.ContainsRune(data, '\\') {
			plain++
		}
		if scanIsDecode(t, data) {
			scanned++
		} else if !bytes.ContainsRune(data, '\\') {
			t.Errorf("a batch without an escape was not read by hand:\n%.300q", data)
		}
		got, err := DecodeBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		var before batchEnvelope
		if err := strictDecode(data, &before); err != nil {
			t.Fatal(err)
		}
		if len(got.Entries)+len(got.Invalid) != len(before.Entries) {
			t.Fatalf("%d entries and %d invalid, want %d", len(got.Entries), len(got.Invalid), len(before.Entries))
		}
		byID := map[string]Entry{}
		for _, e := range before.Entries {
			byID[e.ID] = e
		}
		for _, x := range got.Invalid {
			t.Errorf("entry %s refused: %s", x.ID, x.Error)
		}
		for _, e := range got.Entries {
			now, _ := edgeCanonical(t, e)
			_, old := edgeCanonical(t, byID[e.ID])
			if !bytes.Equal(now, old) {
				t.Fatalf("entry %s: content bytes\n now %q\n old %q", e.ID, now, old)
			}
		}
	}
	if scanned == 0 || plain == 0 {
		t.Errorf("%d batches read by hand, %d without escapes: the fast path is not exercised", scanned, plain)
	}
	t.Logf("%d entries, %d batches read by hand (%d without escapes)", len(pend), scanned, plain)
}

// FuzzTillBatch: two chained entries of one check built from the
// fuzzer's text, points and clock (the second's check id its first's id,
// its lot the first's, as a till shares them), pushed as the sync loop
// pushes them: scanBatch reads them as encoding/json does or declines, and
// the content bytes are the old ones.
//
//	go test ./sync/wire/ -run '^$' -fuzz '^FuzzTillBatch$' -fuzztime 60s -parallel 1
func FuzzTillBatch(f *testing.F) {
	f.Add("возврат <брак>", "10.50", int64(1795000000123456789), 10800, false, uint32(7))
	f.Add("\u2028\xff\"", "-0.000", int64(0), -1800, true, uint32(0))
	f.Add("plain", "1e-9", int64(-62135596800000000), 17, true, uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, note, points string, nanos int64, offset int, sameCheck bool, fd uint32) {
		if len(points) > 40 {
			points = points[:40]
		}
		d, err := decimal.NewFromString(points)
		if err != nil {
			d = decimal.New(int64(len(points)), -int32(len(note)%12))
		}
		at := time.Unix(0, nanos).In(time.FixedZone("", offset%(25*3600)))
		id1, id2 := batchID(1), batchID(2)
		e1 := store.Entry{ID: id1, CheckID: note, CardCode: "2900000000018", Kind: store.KindAccrual, Points: d, Note: note, FD: fd,
			CreatedAt: at, Lots: []store.LotChange{{LotID: id1, Delta: d, Create: true, ActiveFrom: at}}}
		e2 := store.Entry{ID: id2, CheckID: note, CardCode: "2900000000018", Kind: store.KindReversal, Points: d.Neg(), Note: note,
			CreatedAt: at.Add(time.Millisecond), Lots: []store.LotChange{{LotID: id1, Delta: d.Neg()}}, Acked: true}
		if sameCheck {
			e1.CheckID, e2.CheckID = id1, id1
		}
		data, err := json.Marshal(Batch{TillID: batchTill, Entries: []Entry{{Entry: e1}, {Entry: e2, Prev: id1}}})
		if err != nil {
			return // a time json.Marshal refuses: no till sends it
		}
		scanIsDecode(t, data)
		var before batchEnvelope
		if strictDecode(data, &before) != nil {
			return
		}
		for _, e := range before.Entries {
			now, old := edgeCanonical(t, e)
			if !bytes.Equal(now, old) {
				t.Fatalf("content bytes\n now %q\n old %q", now, old)
			}
		}
	})
}
