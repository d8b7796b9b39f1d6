package wire

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
)

// appendIsMarshal fails t if AppendEntry takes e but writes other bytes
// than json.Marshal, or takes an entry json.Marshal refuses, or on a
// decline appends anything; it reports whether AppendEntry took e.
func appendIsMarshal(t testing.TB, e Entry) bool {
	t.Helper()
	prefix := []byte("prefix:")
	got, ok := AppendEntry(prefix, e)
	if !ok {
		if string(got) != "prefix:" {
			t.Fatalf("AppendEntry declined but appended %q", got[len(prefix):])
		}
		return false
	}
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("AppendEntry took an entry json.Marshal refuses (%v): %q", err, got)
	}
	if !bytes.Equal(got[len(prefix):], want) || !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendEntry and json.Marshal differ:\n%q\n%q", got[len(prefix):], want)
	}
	return true
}

// TestAppendEntryIsMarshal: the entries tills send, as head office stores
// them (InUTC, as canonicalEntry does) and as sent, are written by hand
// and byte for byte as json.Marshal writes them.
func TestAppendEntryIsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	entries := realisticEntries(r, 2000)
	for i, e := range entries {
		if !appendIsMarshal(t, e) {
			t.Fatalf("entry %d as sent was declined: %+v", i, e)
		}
		e.Entry = e.Entry.InUTC()
		if !appendIsMarshal(t, e) {
			t.Fatalf("entry %d in UTC was declined: %+v", i, e)
		}
	}
	// The bench workload's entries too.
	data := benchBatchBody(t)
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entries {
		e.Entry = e.Entry.InUTC()
		if !appendIsMarshal(t, e) {
			t.Fatalf("bench entry %s declined", e.ID)
		}
	}
}

func plainEntry() Entry {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return Entry{Entry: store.Entry{ID: batchID(1), CheckID: "c1", CardCode: "2900000000018", Kind: store.KindAccrual,
		Points: decimal.NewFromInt(10), PurchaseKop: 10000, CreatedAt: at,
		Lots: []store.LotChange{{LotID: batchID(1), Delta: decimal.NewFromInt(10), Create: true, ActiveFrom: at}}}}
}

// TestAppendEntryStrings: every ASCII byte, U+2028/U+2029, and broken
// UTF-8 are escaped exactly as encoding/json escapes them.
func TestAppendEntryStrings(t *testing.T) {
	var texts []string
	for c := range utf8.RuneSelf {
		texts = append(texts, string(rune(c)), "a"+string(rune(c))+"b")
	}
	texts = append(texts, "", "возврат «брак» — 5%", "\u2028", "a\u2029b", "\u2027\u202a", "\uFFFD", "😀", "\xff", "a\xffb",
		"\xc0\x80", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xe2\x80", "\xe2\x80\xa8\xe2", "\xf0\x9f\x98",
		"<script>&amp;</script>", `"\`, "\b\f\n\r\t\x00\x1f\x7f")
	for _, s := range texts {
		e := plainEntry()
		e.Note, e.CheckID, e.Prev, e.Kind, e.Lots[0].LotID = s, s, s, store.Kind(s), s
		if !appendIsMarshal(t, e) {
			t.Errorf("text %q declined", s)
		}
	}
}

// TestAppendEntryDecimals: decimals as MarshalJSON writes them, short and
// long, of every exponent.
func TestAppendEntryDecimals(t *testing.T) {
	ds := []decimal.Decimal{{}, decimal.New(0, -5), decimal.New(0, 7), decimal.New(150, -2), decimal.New(-150, -2),
		decimal.New(-5, -1), decimal.New(5, -30), decimal.New(-5, -18), decimal.New(123456789012345678, -18),
		decimal.New(-999999999999999999, -9), decimal.New(999999999999999999, 0), decimal.New(-999999999999999999, 0),
		decimal.New(1, 18), decimal.New(9, 18), decimal.New(-9, 18), decimal.New(10, 18), decimal.New(922337203685477580, 1),
		decimal.New(922337203685477581, 1), decimal.New(-922337203685477580, 1), decimal.New(-922337203685477581, 1),
		decimal.New(7, 19), decimal.New(1000, -3), decimal.New(100100, -4), decimal.RequireFromString("1e400"),
		decimal.RequireFromString("-1e-400"), decimal.RequireFromString("123456789012345678901234567890.123456789"),
		decimal.RequireFromString("-0.000000001"), decimal.RequireFromString("1000000000"),
	}
	r := rand.New(rand.NewPCG(53, 54))
	for range 5000 {
		ds = append(ds, decimal.New(r.Int64N(2e12)-1e12, int32(r.IntN(45)-25)), decimal.New(r.Int64()>>r.IntN(60), int32(r.IntN(41)-20)))
	}
	for _, d := range ds {
		e := plainEntry()
		e.Points, e.WrittenOff, e.Lots[0].Delta = d, d, d.Neg()
		if !appendIsMarshal(t, e) {
			t.Errorf("decimal %s declined", d)
		}
	}
}

// TestAppendEntryTimes: times json.Marshal writes are written the same
// (an offset with seconds too, which RFC 3339 cannot hold); those it
// refuses (a year outside 0–9999, a zone of 24 hours) are declined.
func TestAppendEntryTimes(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 34, 56, 123456789, time.UTC)
	for _, c := range []struct {
		name string
		t    time.Time
		take bool
	}{
		{"UTC", at, true},
		{"zero", time.Time{}, true},
		{"whole seconds", at.Truncate(time.Second), true},
		{"milliseconds", at.Truncate(time.Millisecond), true},
		{"Moscow", at.In(time.FixedZone("MSK", 3*3600)), true},
		{"minus half hour", at.In(time.FixedZone("", -1800)), true},
		{"plus 14", at.In(time.FixedZone("", 14*3600)), true},
		{"minus 23:59", at.In(time.FixedZone("", -(23*3600 + 59*60))), true},
		{"local", at.Local(), true},
		{"Europe/Moscow", inZone(t, at, "Europe/Moscow"), true},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"year -1", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"zone 24 hours", at.In(time.FixedZone("", 24*3600)), false},
		{"zone minus 24 hours", at.In(time.FixedZone("", -24*3600)), false},
		{"zone with seconds", at.In(time.FixedZone("LMT", 2*3600+30*60+17)), true},
		{"zone of 30 seconds", at.In(time.FixedZone("", -30)), true},
		{"monotonic reading", time.Now(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, where := range []string{"created_at", "active_from", "expires_at"} {
				e := plainEntry()
				switch where {
				case "created_at":
					e.CreatedAt = c.t
				case "active_from":
					e.Lots[0].ActiveFrom = c.t
				default:
					e.Lots[0].ExpiresAt = c.t
				}
				take := c.take || (where != "created_at" && c.t.IsZero())
				if got := appendIsMarshal(t, e); got != take {
					t.Errorf("%s: took %v, want %v", where, got, take)
				}
			}
		})
	}
}

func inZone(t *testing.T, at time.Time, name string) time.Time {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("no zone %s: %v", name, err)
	}
	return at.In(loc)
}

// TestAppendEntryOmits: omitempty and omitzero leave out exactly what
// json.Marshal leaves out: a zero written_off of any exponent, a zero
// time of any location, empty lots whether nil or not.
func TestAppendEntryOmits(t *testing.T) {
	for _, f := range []func(*Entry){
		func(e *Entry) { e.WrittenOff = decimal.New(0, -9) },
		func(e *Entry) { e.WrittenOff = decimal.New(0, 3) },
		func(e *Entry) { e.Lots = []store.LotChange{} },
		func(e *Entry) { e.Lots = nil },
		func(e *Entry) { e.Lots[0].ActiveFrom = time.Time{}.In(time.FixedZone("", 3600)) },
		func(e *Entry) { e.Lots[0].ExpiresAt = time.Time{}.Local() },
		func(e *Entry) { e.Lots[0].Create = false },
		func(e *Entry) { e.WithheldKop, e.FD, e.FP, e.Note = 0, 0, 0, "" },
		func(e *Entry) { e.WithheldKop, e.FD, e.FP, e.Note = -1, 1, 4294967295, " " },
		func(e *Entry) { e.Acked = true },
		func(e *Entry) { e.Points = decimal.Decimal{} },
	} {
		e := plainEntry()
		f(&e)
		if !appendIsMarshal(t, e) {
			t.Errorf("declined %+v", e)
		}
	}
}

// TestAppendEntryDecimalSettings: with decimal's package settings changed
// the entry is still json.Marshal's, or declined (a decimal written as a
// number). The settings are restored: no other test runs meanwhile.
func TestAppendEntryDecimalSettings(t *testing.T) {
	trim, sci, bare := decimal.TrimTrailingZeros, decimal.UseScientificNotation, decimal.MarshalJSONWithoutQuotes
	defer func() {
		decimal.TrimTrailingZeros, decimal.UseScientificNotation, decimal.MarshalJSONWithoutQuotes = trim, sci, bare
	}()
	e := plainEntry()
	e.Points, e.WrittenOff, e.Lots[0].Delta = decimal.New(1500, -3), decimal.New(15, 2), decimal.New(10, 0)
	for _, c := range []struct {
		trim, sci, bare, take bool
	}{{true, false, false, true}, {false, false, false, true}, {true, true, false, true}, {false, true, false, true},
		{true, false, true, false}} {
		decimal.TrimTrailingZeros, decimal.UseScientificNotation, decimal.MarshalJSONWithoutQuotes = c.trim, c.sci, c.bare
		if got := appendIsMarshal(t, e); got != c.take {
			t.Errorf("trim %v, scientific %v, without quotes %v: took %v", c.trim, c.sci, c.bare, got)
		}
	}
}

// TestAppendEntryRandom: random entries with nasty strings and random
// values; whenever AppendEntry takes one, its bytes are json.Marshal's,
// and it declines only what it must.
func TestAppendEntryRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(55, 56))
	took := 0
	for range 20000 {
		e := randEntry(r)
		if appendIsMarshal(t, e) {
			took++
		} else if _, err := json.Marshal(e); err == nil {
			t.Fatalf("declined an entry json.Marshal writes: %+v", e)
		}
	}
	if took < 15000 {
		t.Errorf("only %d of 20000 random entries written by hand", took)
	}
	t.Logf("%d of 20000 written by hand", took)
}

// FuzzAppendEntry: an entry built from the fuzzer's values is written by
// AppendEntry as json.Marshal writes it, or declined.
//
//	go test ./sync/wire/ -run '^$' -fuzz '^FuzzAppendEntry$' -fuzztime 60s -parallel 1
func FuzzAppendEntry(f *testing.F) {
	f.Add(batchID(1), "c1", "2900000000018", "accrual", "10", int64(0), int64(10000), int64(0), "0", "", uint32(0), uint32(0),
		batchID(1), "10", true, int64(1795000000), int64(0), int64(1764000000), int64(123456789), 10800, false, "")
	f.Add(batchID(2), "c1", "2900000000018", "reversal", "-5.5", int64(-500), int64(-125380), int64(990), "0.75", "возврат <брак> & \u2028",
		uint32(12345), uint32(4294967295), "L-1", "-5.5", false, int64(0), int64(1800000000), int64(253402300799), int64(999999999), -1800, true, batchID(1))
	f.Add("\xff\"\\", "\x00\x1f\x7f", "", "", "1e400", int64(-1<<63), int64(1<<63-1), int64(0), "-1e-40", "\xed\xa0\x80",
		uint32(1), uint32(0), "", "123456789012345678901234567890.5", false, int64(-62135596800), int64(253402300800), int64(-62167219201), int64(0), 86400, false, "\u2029")
	f.Fuzz(func(t *testing.T, id, check, card, kind, points string, amount, purchase, withheld int64, writtenOff, note string,
		fd, fp uint32, lotID, delta string, create bool, activeFrom, expiresAt, createdSec, createdNsec int64, offset int, acked bool, prev string) {
		dec := func(s string) decimal.Decimal {
			if len(s) > 60 {
				s = s[:60]
			}
			d, err := decimal.NewFromString(s)
			if err != nil {
				return decimal.Decimal{}
			}
			return d
		}
		zone := time.FixedZone("", offset%(26*3600))
		tm := func(sec int64) time.Time {
			if sec == 0 {
				return time.Time{}
			}
			return time.Unix(sec, 0).In(zone)
		}
		e := Entry{Prev: prev, Entry: store.Entry{ID: id, CheckID: check, CardCode: card, Kind: store.Kind(kind), Points: dec(points),
			AmountKop: amount, PurchaseKop: purchase, WithheldKop: withheld, WrittenOff: dec(writtenOff), Note: note, FD: fd, FP: fp,
			CreatedAt: time.Unix(createdSec, createdNsec).In(zone), Acked: acked}}
		if lotID != "" || delta != "" {
			e.Lots = []store.LotChange{{LotID: lotID, Delta: dec(delta), Create: create, ActiveFrom: tm(activeFrom), ExpiresAt: tm(expiresAt)}}
		}
		appendIsMarshal(t, e)
		u := e
		u.Entry = u.Entry.InUTC()
		appendIsMarshal(t, u)
	})
}

func BenchmarkAppendEntry(b *testing.B) {
	data := benchBatchBody(b)
	bt, err := DecodeBatch(data)
	if err != nil {
		b.Fatal(err)
	}
	entries := bt.Entries
	for i := range entries {
		entries[i].Entry = entries[i].Entry.InUTC()
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			for _, e := range entries {
				var ok bool
				if buf, ok = AppendEntry(buf[:0], e); !ok {
					b.Fatal("declined")
				}
			}
		}
	})
	b.Run("append-new-buffer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, e := range entries {
				if _, ok := AppendEntry(nil, e); !ok {
					b.Fatal("declined")
				}
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, e := range entries {
				if _, err := json.Marshal(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// TestEntryBytesPinned: the bytes, and so the digest, of an entry of every
// kind of field stay what head office stored for it: a change to either
// encoder that moved them would make every re-sent entry a conflict.
func TestEntryBytesPinned(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 34, 56, 789000000, time.UTC)
	e := Entry{Prev: "S001-T01-01KAQZ00000000000000000000", Entry: store.Entry{ID: "S001-T01-01KAQZ00000000000000000001",
		CheckID: "S001-T01-0042", CardCode: "2900000000018", Kind: store.KindReversal, Points: decimal.RequireFromString("12.50"),
		AmountKop: -1250, PurchaseKop: -125000, WithheldKop: 300, WrittenOff: decimal.RequireFromString("0.75"),
		Note: "возврат <брак>", FD: 17, FP: 4294967295, CreatedAt: at,
		Lots: []store.LotChange{{LotID: "L1", Delta: decimal.RequireFromString("12.5"), Create: true, ActiveFrom: at, ExpiresAt: at.AddDate(1, 0, 0)}}}}
	const want = `{"id":"S001-T01-01KAQZ00000000000000000001","check_id":"S001-T01-0042","card_code":"2900000000018","kind":"reversal",` +
		`"points":"12.5","amount_kop":-1250,"purchase_kop":-125000,"withheld_kop":300,"written_off":"0.75","note":"возврат \u003cбрак\u003e",` +
		`"fd":17,"fp":4294967295,"lots":[{"lot_id":"L1","delta":"12.5","create":true,"active_from":"2026-11-23T12:34:56.789Z",` +
		`"expires_at":"2027-11-23T12:34:56.789Z"}],"created_at":"2026-11-23T12:34:56.789Z","acked":false,"prev":"S001-T01-01KAQZ00000000000000000000"}`
	got, ok := AppendEntry(nil, e)
	marshalled, err := json.Marshal(e)
	if !ok || err != nil || string(got) != want || string(marshalled) != want {
		t.Fatalf("entry written\n%s (%v)\njson.Marshal\n%s (%v)\nwant\n%s", got, ok, marshalled, err, want)
	}
}
