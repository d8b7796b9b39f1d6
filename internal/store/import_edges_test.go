package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
)

// lotsIn is every lot in s: card code → lot id → remaining.
func lotsIn(t *testing.T, s *Store) map[string]map[string]string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), `SELECT c.code, l.lot_id, l.remaining FROM lots l JOIN cards c ON c.id = l.card_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var code, id, rem string
		if err := rows.Scan(&code, &id, &rem); err != nil {
			t.Fatal(err)
		}
		if out[code] == nil {
			out[code] = map[string]string{}
		}
		out[code][id] = rem
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func demoReplica(t *testing.T) *Replica {
	t.Helper()
	r, err := ParseReplicaFile(demoPath(t), mustReadFile(t, demoPath(t)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func cardOf(t *testing.T, r *Replica, code string) ReplicaCard {
	t.Helper()
	for _, c := range r.Cards {
		if c.Code == code {
			return c
		}
	}
	t.Fatalf("no card %s", code)
	return ReplicaCard{}
}

func lotOf(t *testing.T, r *Replica, id string) ReplicaLot {
	t.Helper()
	for _, l := range r.Lots {
		if l.ID == id {
			return l
		}
	}
	t.Fatalf("no lot %s", id)
	return ReplicaLot{}
}

func totalOf(t *testing.T, s *Store, code string) string {
	t.Helper()
	b, err := s.Spendable(context.Background(), code, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	return b.Total.String()
}

// TestFeedPageAfterRestoreZerosLostLots: head office, restored from a
// backup, sends card 13 with two of its four lots and card 25 with none;
// the page's lots are not grouped by card and carry a lot of card 49,
// which the page does not carry. Card 13's two other lots and card 25's
// lot go to 0 (their rows stay); card 49's lot is updated but its card's
// other lots, and every card the page does not carry (32), are left as
// they were. Lots already at 0 stay so; a second import of the same page
// changes nothing.
func TestFeedPageAfterRestoreZerosLostLots(t *testing.T) {
	ctx := context.Background()
	s := mustDemo(t)
	demo := demoReplica(t)
	// Card 49 gets a second lot first, so that a page with one of its lots
	// but not the card shows whether the other is wrongly emptied.
	extra := lotOf(t, demo, "L-44-1")
	extra.ID = "L-44-2"
	if _, err := s.Import(ctx, &Replica{Version: 1, Lots: []ReplicaLot{extra}}); err != nil {
		t.Fatal(err)
	}
	before := lotsIn(t, s)
	if before["2900000000018"]["L-13-2"] != "200" || before["2900000000025"]["L-20-1"] != "57" || before["2900000000049"]["L-44-2"] != "1200" {
		t.Fatalf("setup: lots %v", before)
	}
	l131, l133 := lotOf(t, demo, "L-13-1"), lotOf(t, demo, "L-13-3")
	half := checkout.MustPoints("60")
	l441 := lotOf(t, demo, "L-44-1")
	l441.Remaining = &half
	page := &Replica{Version: 1,
		Cards: []ReplicaCard{cardOf(t, demo, "2900000000018"), cardOf(t, demo, "2900000000025")},
		Lots:  []ReplicaLot{l133, l441, l131}}
	for round := range 2 {
		if _, rej, err := s.ImportFeed(ctx, page, nil, false); err != nil || len(rej) != 0 {
			t.Fatalf("round %d: import: %v, rejected %+v", round, err, rej)
		}
		got := lotsIn(t, s)
		want := map[string]map[string]string{
			"2900000000018": {"L-13-0": "0", "L-13-1": "100", "L-13-2": "0", "L-13-3": "200"},
			"2900000000025": {"L-20-1": "0"},
			"2900000000049": {"L-44-1": "60", "L-44-2": "1200"},
		}
		for code, lots := range want {
			for id, rem := range lots {
				if r, ok := got[code][id]; !ok || r != rem {
					t.Errorf("round %d: card %s lot %s: remaining %q (present %v), want %s", round, code, id, r, ok, rem)
				}
			}
		}
		for code, lots := range before {
			if want[code] != nil {
				continue
			}
			for id, rem := range lots {
				if got[code][id] != rem {
					t.Errorf("round %d: card %s lot %s not in the page changed %s → %s", round, code, id, rem, got[code][id])
				}
			}
		}
		if tot := totalOf(t, s, "2900000000018"); tot != "300" {
			t.Errorf("round %d: card 13 total %s, want 100 + 200 (the lost lots at 0)", round, tot)
		}
		if tot := totalOf(t, s, "2900000000025"); tot != "0" {
			t.Errorf("round %d: card 25 total %s, want 0", round, tot)
		}
	}
}

// TestFeedLotsOfManyCardsInterleaved: a page of many cards whose lots
// come in no order, some naming cards only the store had, each lands on
// its own card, and the lots of the page's cards not sent are emptied.
func TestFeedLotsOfManyCardsInterleaved(t *testing.T) {
	ctx := context.Background()
	s := mustDemo(t)
	at := demoNow.Add(-24 * time.Hour)
	first := &Replica{Version: 1}
	for i := range 300 {
		code := fmt.Sprintf("2950000%06d", i)
		first.Cards = append(first.Cards, ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
		for j := range 3 {
			first.Lots = append(first.Lots, ReplicaLot{ID: fmt.Sprintf("Q%d", j), Card: code, Points: checkout.IntPoints(int64(i + j + 1)), AccruedAt: at})
		}
	}
	if _, _, err := s.ImportFeed(ctx, first, nil, false); err != nil {
		t.Fatal(err)
	}
	// The second page: cards 0..199 whole with lots Q0 and Q2 (Q1 lost),
	// lots shuffled and mixed with lots Q1 of cards 200..299, which the
	// page does not carry.
	r := rand.New(rand.NewPCG(7, 8))
	page := &Replica{Version: 1}
	for i := range 200 {
		page.Cards = append(page.Cards, first.Cards[i])
		page.Lots = append(page.Lots, first.Lots[3*i], first.Lots[3*i+2])
	}
	for i := 200; i < 300; i++ {
		l := first.Lots[3*i+1]
		l.Points = checkout.IntPoints(1000)
		page.Lots = append(page.Lots, l)
	}
	r.Shuffle(len(page.Lots), func(a, b int) { page.Lots[a], page.Lots[b] = page.Lots[b], page.Lots[a] })
	if _, rej, err := s.ImportFeed(ctx, page, nil, false); err != nil || len(rej) != 0 {
		t.Fatalf("import: %v, rejected %+v", err, rej)
	}
	got := lotsIn(t, s)
	for i := range 300 {
		code := fmt.Sprintf("2950000%06d", i)
		want := map[string]string{"Q0": fmt.Sprint(i + 1), "Q1": "0", "Q2": fmt.Sprint(i + 3)}
		if i >= 200 {
			want["Q1"] = "1000"
		}
		for id, rem := range want {
			if got[code][id] != rem {
				t.Errorf("card %s lot %s: remaining %q, want %s", code, id, got[code][id], rem)
			}
		}
		if len(got[code]) != 3 {
			t.Errorf("card %s has lots %v, want 3", code, got[code])
		}
	}
}

// TestImportIsNotAFeedPage: a replica file's import (not a feed page)
// names a card and one of its lots; the card's other lots stay as they
// were.
func TestImportIsNotAFeedPage(t *testing.T) {
	ctx := context.Background()
	s := mustDemo(t)
	demo := demoReplica(t)
	if _, err := s.Import(ctx, &Replica{Version: 1, Cards: []ReplicaCard{cardOf(t, demo, "2900000000018")},
		Lots: []ReplicaLot{lotOf(t, demo, "L-13-1")}}); err != nil {
		t.Fatal(err)
	}
	if got := lotsIn(t, s)["2900000000018"]; got["L-13-2"] != "200" || got["L-13-3"] != "200" {
		t.Fatalf("card 13 after a file import of one lot: %v", got)
	}
}

// TestFeedPageOfACardWithItsLotUnderAnotherCard: a lot id is per card:
// a page carrying card 13 and a lot "L-13-2" of card 25 empties card 13's
// L-13-2 and adds card 25's.
func TestFeedPageOfACardWithItsLotUnderAnotherCard(t *testing.T) {
	ctx := context.Background()
	s := mustDemo(t)
	demo := demoReplica(t)
	moved := lotOf(t, demo, "L-13-2")
	moved.Card = "2900000000025"
	page := &Replica{Version: 1, Cards: []ReplicaCard{cardOf(t, demo, "2900000000018")},
		Lots: []ReplicaLot{lotOf(t, demo, "L-13-0"), lotOf(t, demo, "L-13-1"), lotOf(t, demo, "L-13-3"), moved}}
	if _, rej, err := s.ImportFeed(ctx, page, nil, false); err != nil || len(rej) != 0 {
		t.Fatalf("import: %v %+v", err, rej)
	}
	got := lotsIn(t, s)
	if got["2900000000018"]["L-13-2"] != "0" || got["2900000000025"]["L-13-2"] != "200" || got["2900000000025"]["L-20-1"] != "57" {
		t.Fatalf("lots: card 13 %v, card 25 %v", got["2900000000018"], got["2900000000025"])
	}
}

// TestValidateKeysAsBefore: the record keys in Validate's errors read as
// fmt's %q and %d wrote them before recKey (`cards[0] code "…": …`),
// whatever the id holds.
func TestValidateKeysAsBefore(t *testing.T) {
	ids := []string{"", "a b", "a\"b", "a\\b", "Ж\x00", "\xff", "\u2028", "tab\tnl\n", "😀", strings.Repeat("x", 70)}
	r := &Replica{Version: 1}
	for _, id := range ids {
		r.Stores = append(r.Stores, ReplicaStore{ID: id})
		r.Groups = append(r.Groups, ReplicaGroup{ID: id})
		r.Products = append(r.Products, ReplicaProduct{ID: id})
		r.Programs = append(r.Programs, checkout.Program{ID: id})
		r.Promotions = append(r.Promotions, ReplicaPromotion{Program: "nope", Promotion: checkout.Promotion{ID: id}})
		r.CardKinds = append(r.CardKinds, ReplicaCardKind{ID: id})
		r.Cards = append(r.Cards, ReplicaCard{Code: id, Kind: "nope"})
		r.Lots = append(r.Lots, ReplicaLot{ID: id, Card: "nope"})
	}
	r.CardKeys = []ReplicaCardKey{{ID: 5}, {ID: 5}, {ID: 65535}}
	err := r.Validate(nil)
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	sections := map[string]bool{}
	for _, e := range errs {
		var re *RecordError
		if !errors.As(e, &re) {
			continue
		}
		var want string
		switch i := re.Index; re.Section {
		case "stores":
			want = fmt.Sprintf("id %q", r.Stores[i].ID)
		case "groups":
			want = fmt.Sprintf("id %q", r.Groups[i].ID)
		case "products":
			want = fmt.Sprintf("id %q", r.Products[i].ID)
		case "programs":
			want = fmt.Sprintf("id %q", r.Programs[i].ID)
		case "promotions":
			want = fmt.Sprintf("id %q", r.Promotions[i].ID)
		case "card_kinds":
			want = fmt.Sprintf("id %q", r.CardKinds[i].ID)
		case "cards":
			want = fmt.Sprintf("code %q", r.Cards[i].Code)
		case "lots":
			want = fmt.Sprintf("id %q", r.Lots[i].ID)
		case "card_keys":
			want = fmt.Sprintf("id %d", r.CardKeys[i].ID)
		default:
			t.Errorf("unknown section in %v", re)
			continue
		}
		sections[re.Section] = true
		if re.Key != want {
			t.Errorf("%s[%d]: key %q, want %q", re.Section, re.Index, re.Key, want)
		}
		if got := re.Error(); got != fmt.Sprintf("%s[%d] %s: %v", re.Section, re.Index, want, re.Err) {
			t.Errorf("error text %q", got)
		}
	}
	// Validate stops at 50 problems: at least the first sections are named.
	for _, sec := range []string{"stores", "groups"} {
		if !sections[sec] {
			t.Errorf("no error named section %s: %v", sec, err)
		}
	}
	// The later sections, alone.
	r2 := &Replica{Version: 1, CardKeys: r.CardKeys}
	for _, id := range ids[:4] {
		r2.Cards = append(r2.Cards, ReplicaCard{Code: id, Kind: "nope"})
		r2.Lots = append(r2.Lots, ReplicaLot{ID: id, Card: "nope"})
	}
	msg := r2.Validate(nil).Error()
	for _, want := range []string{`cards[0] code "": `, `cards[2] code "a\"b": `, `cards[3] code "a\\b": `, `lots[1] id "a b": `,
		`card_keys[1] id 5: duplicate`, `card_keys[0] id 5: `} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
}

// TestValidIDIsTheRegexp: ValidID agrees with the documented pattern on
// random ids near its edges (length 63-65, every allowed byte, a bad byte
// anywhere).
func TestValidIDIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$`)
	alpha := "aZ09_.:/-\n\x00 Ж+$"
	r := rand.New(rand.NewPCG(9, 10))
	for range 50000 {
		n := r.IntN(67)
		b := make([]byte, n)
		for i := range b {
			if r.IntN(40) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alpha[r.IntN(9)]
			}
		}
		if r.IntN(10) == 0 && n > 0 {
			b[r.IntN(n)] = alpha[r.IntN(len(alpha))]
		}
		id := string(b)
		if got, want := ValidID(id), re.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", id, got, want)
		}
	}
}

// FuzzValidID: ValidID is the pattern, for any bytes.
func FuzzValidID(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$`)
	for _, s := range []string{"a", "-a", "a-", strings.Repeat("a", 64), strings.Repeat("a", 65), "aЖ", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := ValidID(id), re.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", id, got, want)
		}
	})
}

// oldDecimalText is checkout's jsonDecimalText as it was before plain
// strings were taken as they are: every string through encoding/json.
func oldDecimalText(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return "", errors.New("empty value")
	}
	if b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	err := json.Unmarshal(b, &n)
	return n.String(), err
}

// TestPointsAndMoneyFromJSONAsBefore: Points and Money read every JSON
// value, string or number, escaped or not, as they did when every string
// went through encoding/json.
func TestPointsAndMoneyFromJSONAsBefore(t *testing.T) {
	lits := []string{`"12.50"`, `"0"`, `""`, `" 1"`, `"1 "`, `"1e3"`, `"-0.01"`, `"+5"`, `".5"`, `"1.001"`, `"\u0031"`, `"1\"`,
		`"1\\"`, `"١"`, "\"1\x7f\"", "\"\x7f\"", `12.5`, `-3`, `1e2`, ` "7" `, `null`, `"null"`, `"`, `""""`, `"1"2"`, `"abc`, `abc"`,
		`"123456789012345678901234567890.123456789"`, "\"1\t\"", `"0x10"`, `"Inf"`, `"NaN"`}
	r := rand.New(rand.NewPCG(13, 14))
	for range 3000 {
		b := []byte{'"'}
		for n := r.IntN(6); n > 0; n-- {
			b = append(b, "0123456789.-+eE \"\\\x7f\x01é"[r.IntN(18)])
		}
		lits = append(lits, string(append(b, '"')))
	}
	for _, lit := range lits {
		old, oerr := oldDecimalText([]byte(lit))
		var p checkout.Points
		perr := p.UnmarshalJSON([]byte(lit))
		want, werr := checkout.ParsePoints(old)
		if (perr == nil) != (oerr == nil && werr == nil) || (perr == nil && !p.Equal(want)) || (perr == nil && p.String() != want.String()) {
			t.Errorf("points %q: %v %v, before %v %v %v", lit, p, perr, want, oerr, werr)
		}
		var m checkout.Money
		merr := m.UnmarshalJSON([]byte(lit))
		wm, wmerr := checkout.ParseMoney(old)
		if (merr == nil) != (oerr == nil && wmerr == nil) || (merr == nil && m.String() != wm.String()) {
			t.Errorf("money %q: %v %v, before %v %v %v", lit, m, merr, wm, oerr, wmerr)
		}
	}
}
