package wire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// edgeFeed wraps a replica body (the text inside "replica":{...}) in a feed.
func edgeFeed(replica string) []byte {
	return []byte(`{"cursor":"1","replica":{"version":1` + replica + `}}`)
}

const edgeCard = `{"code":"1","kind":"k","state":"active"}`
const edgeLot = `{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01T00:00:00Z"}`

// TestScanFeedNastyInputs: hand-picked inputs where a hand-written
// reader is likely to part from encoding/json. Each must be either
// declined or read exactly as encoding/json reads it; the ones marked
// take must be read by hand (plain JSON), the ones marked decline must
// not (scanFeed cannot be sure of them).
const take, decline, either = 1, 2, 3

type nastyCase struct {
	name string
	data []byte
	want int
}

func nastyCases() []nastyCase {
	return []nastyCase{
		{"plain", edgeFeed(`,"cards":[` + edgeCard + `],"lots":[` + edgeLot + `]`), take},
		{"lots before cards", edgeFeed(`,"lots":[` + edgeLot + `],"cards":[` + edgeCard + `]`), take},
		{"empty arrays", edgeFeed(`,"cards":[],"lots":[]`), take},
		{"white space everywhere", []byte(" \t\r\n{ \"cursor\" :\n\"1\" ,\t\"replica\" : {\r\"version\" : 1 , \"cards\" : [ { \"code\" : \"1\" , \"kind\":\"k\" ,\"state\" :\"active\" } ] } } \n"), take},
		{"U+2028 and U+2029 in a holder", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\u2028b\u2029" + `c"}]`), take},
		{"four-byte UTF-8 in a holder", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"𝄞 😀"}]`), take},
		{"U+FFFD written out", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"` + "\uFFFD" + `"}]`), take},
		{"DEL raw in a string", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\x7f" + `"}]`), either},
		{"invalid UTF-8 in a holder", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\xff" + `"}]`), decline},
		{"surrogate half in UTF-8", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\xed\xa0\x80" + `"}]`), decline},
		{"overlong NUL", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\xc0\x80" + `"}]`), decline},
		{"truncated UTF-8 before the quote", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"` + "\xe2\x80" + `"}]`), decline},
		{"raw tab in a string", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a` + "\t" + `"}]`), decline},
		{"escaped quote in a card", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","holder":"a\"b"}]`), decline},
		{"escaped solidus in a code", edgeFeed(`,"cards":[{"code":"1\/2","kind":"k","state":"active"}]`), decline},
		{"unicode escape in a key", edgeFeed(`,"cards":[{"c\u006fde":"1","kind":"k","state":"active"}]`), decline},
		{"escape in the replica key", []byte(`{"cursor":"1","replic\u0061":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"escape in the cards key", edgeFeed(`,"c\u0061rds":[` + edgeCard + `]`), decline},
		{"key in upper case in a card", edgeFeed(`,"cards":[{"Code":"1","kind":"k","state":"active"}]`), decline},
		{"long s in the cards key", edgeFeed(`,"cardſ":[` + edgeCard + `]`), decline},
		{"long s in a card key", edgeFeed(`,"cards":[{"code":"1","kind":"k","ſtate":"active"}]`), decline},
		{"Kelvin sign in a card key", edgeFeed(`,"cards":[{"code":"1","` + "\u212a" + `ind":"k","state":"active"}]`), decline},
		{"Kelvin sign in a lot key", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01T00:00:00Z","chec` + "\u212a" + `_id":"c"}]`), decline},
		{"dotted capital I in the replica key", []byte(`{"cursor":"1","replica":{"version":1,"cards":[` + edgeCard + `]},"replİca":{"cards":[]}}`), either},
		{"dotless i in the replica key", []byte(`{"cursor":"1","replica":{"version":1,"cards":[` + edgeCard + `]},"replıca":{"cards":[]}}`), either},
		{"second replica in upper case", []byte(`{"cursor":"1","replica":{"version":1,"cards":[` + edgeCard + `]},"REPLICA":{"cards":[]}}`), decline},
		{"second replica in upper case first", []byte(`{"cursor":"1","Replica":{"version":1,"cards":[{"code":"9","kind":"k","state":"active","holder":"h"}]},"replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"cards twice, second in another case", edgeFeed(`,"cards":[` + edgeCard + `],"CARDS":[]`), decline},
		{"lots twice", edgeFeed(`,"lots":[` + edgeLot + `],"lots":[]`), decline},
		{"a card key twice", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","code":"2"}]`), decline},
		{"history key twice", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","history":{"month":"2026-01","month":"2026-02"}}]`), decline},
		{"remaining twice", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","remaining":"1","remaining":"2","accrued_at":"2026-01-01T00:00:00Z"}]`), decline},
		{"unknown card field", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","colour":"red"}]`), decline},
		{"unknown replica field", edgeFeed(`,"cards":[` + edgeCard + `],"colour":"red"`), decline},
		{"unknown feed field", []byte(`{"cursor":"1","colour":"red","replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"null card", edgeFeed(`,"cards":[null]`), decline},
		{"null cards", edgeFeed(`,"cards":null`), decline},
		{"null debt", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","debt":null}]`), decline},
		{"numeric points", edgeFeed(`,"lots":[{"id":"x","card":"1","points":5,"accrued_at":"2026-01-01T00:00:00Z"}]`), decline},
		{"huge points", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"123456789012345678901234567890123456789.000000000000000000001","accrued_at":"2026-01-01T00:00:00Z"}]`), take},
		{"points with an exponent", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"1e3","accrued_at":"2026-01-01T00:00:00Z"}]`), take},
		{"points with a huge exponent", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"1e99999999999","accrued_at":"2026-01-01T00:00:00Z"}]`), either},
		{"points not a number", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"five","accrued_at":"2026-01-01T00:00:00Z"}]`), decline},
		{"money with three decimals", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active","history":{"purchases_month":"1.001"}}]`), decline},
		{"time without zone", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01T00:00:00"}]`), decline},
		{"time with a 24th hour", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01T24:00:00Z"}]`), decline},
		{"time with a lower-case t", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01t00:00:00z"}]`), either},
		{"time with nanoseconds and offset", edgeFeed(`,"lots":[{"id":"x","card":"1","points":"5","accrued_at":"2026-01-01T00:00:00.123456789+03:00","active_from":"2026-01-01T00:00:00-00:30","expires_at":"9999-12-31T23:59:59Z"}]`), take},
		{"trailing garbage", append(edgeFeed(`,"cards":[`+edgeCard+`]`), " x"...), decline},
		{"trailing second object", append(edgeFeed(`,"cards":[`+edgeCard+`]`), "{}"...), decline},
		{"trailing comma in cards", edgeFeed(`,"cards":[` + edgeCard + `,]`), decline},
		{"trailing comma in a card", edgeFeed(`,"cards":[{"code":"1","kind":"k","state":"active",}]`), decline},
		{"missing comma in cards", edgeFeed(`,"cards":[` + edgeCard + edgeCard + `]`), decline},
		{"cards at the feed's top", []byte(`{"cursor":"1","cards":[` + edgeCard + `],"replica":{"version":1}}`), decline},
		{"replica is an array", []byte(`{"cursor":"1","replica":[{"cards":[]}]}`), decline},
		{"replica null then object", []byte(`{"cursor":"1","replica":null,"replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"nested cards in stores skipped", edgeFeed(`,"stores":[{"id":"S1","name":"n","timezone":"UTC"}],"folded_through":{"cards":"x"},"cards":[` + edgeCard + `]`), take},
		{"skipped strings with escaped quotes and brackets", []byte(`{"cursor":"a\"],\"replica\":{\"cards\":[","next":"}\\","more":true,"replica":{"version":1,"cards":[` + edgeCard + `]}}`), take},
		{"skipped string ending in backslash pairs", []byte(`{"cursor":"a\\\\","replica":{"version":1,"cards":[` + edgeCard + `]}}`), take},
		{"cards inside a skipped string", []byte(`{"cursor":"{\"replica\":{\"cards\":[]}}","replica":{"version":1,"lots":[` + edgeLot + `]}}`), take},
		{"unterminated string in a skipped value", []byte(`{"cursor":"1,"replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"bad escape in a skipped value", []byte(`{"cursor":"\x","replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"bare word in a skipped value", []byte(`{"cursor":"1","more":tru,"replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"number glued to a string in a skipped value", []byte(`{"cursor":"1","more":1"x","replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"huge version", edgeFeed(`,"version":123456789012345678901234567890,"cards":[` + edgeCard + `]`), decline},
		{"version twice, last wins", []byte(`{"cursor":"1","replica":{"version":7,"cards":[` + edgeCard + `],"version":1}}`), take},
		{"offline limits beside", []byte(`{"cursor":"1","offline":{"card_cap":"100","till_cap":"1000","max_age":"1h"},"replica":{"version":1,"cards":[` + edgeCard + `]}}`), either},
		{"deep array in a skipped value", []byte(`{"cursor":"1","next":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"replica":{"version":1,"cards":[` + edgeCard + `]}}`), decline},
		{"deep object in the replica", edgeFeed(`,"folded_through":` + strings.Repeat(`{"a":`, 11000) + `1` + strings.Repeat("}", 11000) + `,"cards":[` + edgeCard + `]`), decline},
		{"BOM before the feed", append([]byte("\xef\xbb\xbf"), edgeFeed(`,"cards":[`+edgeCard+`]`)...), decline},
		{"NUL after the feed", append(edgeFeed(`,"cards":[`+edgeCard+`]`), 0), decline},
		{"form feed as white space", []byte("{\f\"cursor\":\"1\",\"replica\":{\"version\":1,\"cards\":[" + edgeCard + "]}}"), decline},
		{"empty", nil, decline},
		{"only a brace", []byte("{"), decline},
	}
}

func TestScanFeedNastyInputs(t *testing.T) {
	for _, c := range nastyCases() {
		t.Run(c.name, func(t *testing.T) {
			took := sameAsDecode(t, c.data)
			switch {
			case c.want == take && !took:
				t.Errorf("declined plain JSON it should read:\n%.300s", c.data)
			case c.want == decline && took:
				t.Errorf("read by hand what it cannot be sure of:\n%.300s", c.data)
			}
			decodeFeedAgrees(t, c.data)
		})
	}
}

// decodeFeedAgrees fails t if DecodeFeed, whichever way it reads, gives a
// replica other than encoding/json's for a feed encoding/json reads whole.
func decodeFeedAgrees(t *testing.T, data []byte) {
	t.Helper()
	var whole feedEnvelope[*store.Replica]
	if strictDecode(data, &whole) != nil || whole.Replica == nil || whole.Cursor == "" {
		return
	}
	got, err := DecodeFeed(data)
	if err != nil {
		if checkFeed(whole.feed(), true) == nil {
			t.Errorf("DecodeFeed refused a feed encoding/json reads whole: %v", err)
		}
		return
	}
	if !reflect.DeepEqual(got.Replica, whole.Replica) || got.Cursor != whole.Cursor || got.More != whole.More || got.Next != whole.Next {
		t.Errorf("DecodeFeed differs from encoding/json:\n%+v\n%+v", got.Replica, whole.Replica)
	}
}

// edgeText is a string drawn to trip a reader: quotes, backslashes,
// control characters, U+2028, non-ASCII, invalid UTF-8.
func edgeText(r *rand.Rand) string {
	plain := []string{"a", "Z", "0", "2900000000018", " ", "/", "\x7f", "é", "Ж", "ſ", "\u212a", "İ", "😀", "\uFFFD", "{", "}", "[", "]", ":", ","}
	nasty := []string{"\"", "\\", "\n", "\t", "\x00", "\x1f", "\u2028", "\u2029", "\xff", "\xc0\x80", "\xed\xa0\x80", "<&>"}
	var b strings.Builder
	for n := r.IntN(4); n > 0; n-- {
		if r.IntN(20) == 0 {
			b.WriteString(nasty[r.IntN(len(nasty))])
		} else {
			b.WriteString(plain[r.IntN(len(plain))])
		}
	}
	return b.String()
}

func edgePoints(r *rand.Rand) checkout.Points {
	return checkout.MustPoints([]string{"0", "1", "0.5", "12.345", "100000000000000000000.000000001", "7"}[r.IntN(6)])
}

func edgeMoney(r *rand.Rand) checkout.Money {
	return checkout.MustMoney([]string{"0", "0.01", "12345.67", "99999999999.99"}[r.IntN(4)])
}

func edgeTime(r *rand.Rand) time.Time {
	zones := []*time.Location{time.UTC, time.FixedZone("MSK", 3*3600), time.FixedZone("", -1800)}
	return time.Unix(r.Int64N(1<<35), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
}

// randReplica is a random replica page, its strings nasty.
func randReplica(r *rand.Rand) *store.Replica {
	rep := &store.Replica{Version: 1}
	for range r.IntN(4) {
		c := store.ReplicaCard{Code: edgeText(r), Kind: edgeText(r), State: checkout.CardState(edgeText(r))}
		if r.IntN(2) == 0 {
			c.Program, c.BlockReason, c.Holder, c.Debt = edgeText(r), edgeText(r), edgeText(r), edgePoints(r)
		}
		if r.IntN(2) == 0 {
			c.History = store.CardHistory{Month: edgeText(r), PurchasesAllTime: edgeMoney(r), PurchasesMonth: edgeMoney(r),
				PurchasesPrevMonth: edgeMoney(r), AccruedMonth: edgePoints(r), RedeemedMonth: edgePoints(r)}
		}
		rep.Cards = append(rep.Cards, c)
	}
	for range r.IntN(4) {
		l := store.ReplicaLot{ID: edgeText(r), Card: edgeText(r), Points: edgePoints(r), AccruedAt: edgeTime(r)}
		if r.IntN(2) == 0 {
			p := edgePoints(r)
			from, exp := edgeTime(r), edgeTime(r)
			l.Remaining, l.ActiveFrom, l.ExpiresAt, l.CheckID = &p, &from, &exp, edgeText(r)
		}
		rep.Lots = append(rep.Lots, l)
	}
	if r.IntN(3) == 0 {
		rep.Stores = []store.ReplicaStore{{ID: edgeText(r), Name: edgeText(r), TimeZone: "UTC"}}
	}
	if r.IntN(3) == 0 {
		rep.FoldedThrough = map[string]string{edgeText(r): edgeText(r)}
	}
	if r.IntN(2) == 0 && rep.Cards == nil {
		rep.Cards = []store.ReplicaCard{}
	}
	return rep
}

// mutate changes data in one of the ways a hand reader may get wrong.
func mutate(r *rand.Rand, data []byte) []byte {
	keys := []string{`"code"`, `"kind"`, `"state"`, `"holder"`, `"debt"`, `"history"`, `"month"`, `"id"`, `"card"`,
		`"points"`, `"remaining"`, `"accrued_at"`, `"expires_at"`, `"cards"`, `"lots"`, `"replica"`, `"cursor"`, `"version"`}
	switch r.IntN(9) {
	case 0: // white space after a random structural byte
		ws := []string{" ", "\n", "\t", "\r", "\f", "\v", "\u00a0"}[r.IntN(7)]
		var out []byte
		for _, c := range data {
			out = append(out, c)
			if (c == ',' || c == ':' || c == '{' || c == '[') && r.IntN(4) == 0 {
				out = append(out, ws...)
			}
		}
		return out
	case 1: // a key in another case, or with a Unicode fold
		k := keys[r.IntN(len(keys))]
		alt := []string{strings.ToUpper(k), strings.ReplaceAll(k, "s", "ſ"), strings.ReplaceAll(k, "k", "\u212a"),
			strings.ReplaceAll(k, "i", "İ"), strings.ReplaceAll(k, "i", "ı"), `"` + strings.ToUpper(k[1:2]) + k[2:]}[r.IntN(6)]
		return bytes.Replace(data, []byte(k), []byte(alt), 1)
	case 2: // a key twice
		k := keys[r.IntN(len(keys))]
		i := bytes.Index(data, []byte(k+":"))
		if i < 0 {
			return data
		}
		return append(append(append([]byte{}, data[:i]...), []byte(k+`:"dup",`)...), data[i:]...)
	case 3: // a string value turned into a number or null
		for _, k := range keys {
			if i := bytes.Index(data, []byte(k+`:"`)); i >= 0 && r.IntN(3) == 0 {
				j := i + len(k) + 1
				end := bytes.IndexByte(data[j+1:], '"')
				if end < 0 {
					return data
				}
				v := []string{"5", "null", "true", "-0", "1e400", "[]", "{}"}[r.IntN(7)]
				return append(append(append([]byte{}, data[:j]...), v...), data[j+end+2:]...)
			}
		}
		return data
	case 4: // an escape in a string
		i := bytes.Index(data, []byte(`":"`))
		if i < 0 {
			return data
		}
		esc := []string{`\u0041`, `\"`, `\\`, `\/`, `\n`, `\ud800`, `\x`}[r.IntN(7)]
		return append(append(append([]byte{}, data[:i+3]...), esc...), data[i+3:]...)
	case 5: // trailing bytes
		return append(append([]byte{}, data...), []string{" ", "x", "{}", "\x00", "\n\n"}[r.IntN(5)]...)
	case 6: // a second replica, or a replica's section twice
		sec := []string{`,"replica":{"version":1}`, `,"Replica":{"cards":[]}`, `,"replİca":{"cards":[]}`}[r.IntN(3)]
		return append(append([]byte{}, data[:len(data)-1]...), append([]byte(sec), '}')...)
	case 7: // a byte cut out
		if len(data) == 0 {
			return data
		}
		i := r.IntN(len(data))
		return append(append([]byte{}, data[:i]...), data[i+1:]...)
	default: // an unknown field in a card or lot
		return bytes.Replace(data, []byte(`{"code":`), []byte(`{"colour":"red","code":`), 1)
	}
}

// TestScanFeedRandomPages: random pages with nasty strings, through
// AppendJSON and then random mutations, read by scanFeed either as
// encoding/json reads them or not at all; head office's own writing of
// plain values is read by hand.
func TestScanFeedRandomPages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var took, plain, plainTook int
	for i := range 4000 {
		rep := randReplica(r)
		f := &Feed{Cursor: fmt.Sprint(i + 1), Replica: rep, More: r.IntN(2) == 0, Next: "x", Full: r.IntN(2) == 0}
		data, err := f.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if sameAsDecode(t, data) {
			took++
		}
		if !bytes.ContainsAny(data, `\`) && (len(rep.Cards) > 0 || len(rep.Lots) > 0) && strings.ToValidUTF8(string(data), "") == string(data) {
			plain++
			if sameAsDecode(t, data) {
				plainTook++
			}
		}
		for range 1 + r.IntN(3) {
			data = mutate(r, data)
			if sameAsDecode(t, data) {
				took++
			}
			decodeFeedAgrees(t, data)
		}
	}
	if plainTook != plain {
		t.Errorf("only %d of %d unescaped pages were read by hand", plainTook, plain)
	}
	t.Logf("%d read by hand; %d of %d unescaped pages", took, plainTook, plain)
}

// FuzzScanFeed: whatever scanFeed takes, encoding/json takes too and reads
// the same, and DecodeFeed agrees with encoding/json; seeded with head
// office's pages, the nasty inputs and random pages above.
func FuzzScanFeed(f *testing.F) {
	for _, s := range scanFeedSeeds(f) {
		f.Add(s)
	}
	for _, c := range nastyCases() {
		if len(c.data) < 4096 {
			f.Add(c.data)
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 40 {
		data, err := (&Feed{Cursor: fmt.Sprint(i + 1), Replica: randReplica(r), More: true, Next: "x"}).AppendJSON(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsDecode(t, data)
		decodeFeedAgrees(t, data)
	})
}
