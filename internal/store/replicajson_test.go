package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/jsonscan"
)

// randomReplica has cards and lots with every optional field set or not,
// text that encoding/json escapes, and times in several zones.
func randomReplica(rng *rand.Rand, n int) *Replica {
	texts := []string{"", "S001-T01-01K8", "Иванова Анна", "a<b>&c", "tab\there", "quote\"back\\", "\u2028line", "bad\xffutf8", "\x00nul", "ok"}
	text := func() string { return texts[rng.IntN(len(texts))] }
	pts := func() checkout.Points {
		return checkout.MustPoints([]string{"0", "1", "-5", "12.5", "0.000000001", "1000000000", "-0.75"}[rng.IntN(7)])
	}
	money := func() checkout.Money {
		return checkout.MustMoney([]string{"0", "1.00", "123456.78", "-3.50"}[rng.IntN(4)])
	}
	zones := []*time.Location{time.UTC, time.FixedZone("MSK", 3*3600), time.FixedZone("odd", -(4*3600 + 30*60 + 17)), time.FixedZone("far", 14*3600)}
	when := func() time.Time {
		return time.Date(2000+rng.IntN(200), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60),
			[]int{0, 5e8, 123456789}[rng.IntN(3)], zones[rng.IntN(len(zones))])
	}
	asOf := when()
	r := &Replica{Version: 1, AsOf: &asOf, Stores: []ReplicaStore{{ID: "S001", Name: "Магазин <1>", TimeZone: "Europe/Moscow"}},
		FoldedThrough: map[string]string{"S001-T02": "b", "S001-T01": "a"}}
	for i := 0; i < n; i++ {
		c := ReplicaCard{Code: fmt.Sprintf("29%011d", i), Kind: "bonus", State: checkout.StateActive}
		if rng.IntN(2) == 0 {
			c.Program, c.BlockReason, c.Holder, c.State = text(), text(), text(), checkout.CardState(text())
		}
		if rng.IntN(2) == 0 {
			c.Debt = pts()
		}
		if rng.IntN(2) == 0 {
			c.History = CardHistory{Month: []string{"", "2026-11"}[rng.IntN(2)], PurchasesAllTime: money(), PurchasesMonth: money(),
				PurchasesPrevMonth: money(), AccruedMonth: pts(), RedeemedMonth: pts()}
		}
		r.Cards = append(r.Cards, c)
		for j := 0; j < rng.IntN(4); j++ {
			l := ReplicaLot{ID: text(), Card: c.Code, Points: pts(), AccruedAt: when(), CheckID: text()}
			if rng.IntN(2) == 0 {
				p := pts()
				l.Remaining = &p
			}
			if rng.IntN(2) == 0 {
				t := when()
				l.ActiveFrom = &t
			}
			if rng.IntN(2) == 0 {
				t := when()
				l.ExpiresAt = &t
			}
			r.Lots = append(r.Lots, l)
		}
	}
	return r
}

// TestAppendJSONIsMarshal: AppendJSON writes what json.Marshal writes,
// byte for byte, for replicas with every field set or left out, and
// refuses what it refuses (a time past year 9999).
func TestAppendJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		r := randomReplica(rng, rng.IntN(20))
		if i%7 == 0 {
			r.Cards, r.Lots, r.AsOf = nil, nil, nil
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got[6:]) != string(want) {
			t.Fatalf("replica %d:\nAppendJSON %s\njson.Marshal %s", i, got[6:], want)
		}
	}
	late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Replica{Version: 1, Lots: []ReplicaLot{{ID: "L", Card: "C", AccruedAt: time.Now(), ExpiresAt: &late}}}
	if _, err := json.Marshal(r); err == nil {
		t.Fatal("json.Marshal took year 10000")
	}
	if _, err := r.AppendJSON(nil); err == nil {
		t.Error("AppendJSON took year 10000")
	}
}

// TestAppendJSONGapsJoinToAppendJSON: any first cards and lots left out
// by AppendJSONGaps, encoded by AppendCardsJSON and AppendLotsJSON and
// put in at the offsets it gives, make AppendJSON's bytes.
func TestAppendJSONGapsJoinToAppendJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 300; i++ {
		r := randomReplica(rng, rng.IntN(12))
		want, err := r.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		nc, nl := rng.IntN(len(r.Cards)+1), rng.IntN(len(r.Lots)+1)
		if i%5 == 0 {
			nc, nl = len(r.Cards), len(r.Lots)
		}
		got, cardsAt, lotsAt, err := r.AppendJSONGaps([]byte("prefix"), nc, nl)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Cards) == 0 && cardsAt != -1 || len(r.Lots) == 0 && lotsAt != -1 {
			t.Fatalf("replica %d without cards or lots: gaps at %d, %d", i, cardsAt, lotsAt)
		}
		cards := AppendCardsJSON(nil, r.Cards[:nc])
		lots, err := AppendLotsJSON(nil, r.Lots[:nl])
		if err != nil {
			t.Fatal(err)
		}
		var joined []byte
		from := 0
		for _, g := range []struct {
			at  int
			enc []byte
		}{{cardsAt, cards}, {lotsAt, lots}} {
			if g.at >= 0 {
				joined = append(append(joined, got[from:g.at]...), g.enc...)
				from = g.at
			}
		}
		joined = append(joined, got[from:]...)
		if string(joined[6:]) != string(want) {
			t.Fatalf("replica %d, %d of %d cards and %d of %d lots left out:\njoined     %s\nAppendJSON %s", i, nc, len(r.Cards), nl, len(r.Lots), joined[6:], want)
		}
	}
}

// TestAppendJSONTimeIsMarshal: AppendJSONTime writes what MarshalJSON
// writes for times across years 0000-9999 (before 1970 too), in zones east
// and west of UTC and of odd offsets, with and without fractions; and
// refuses what it refuses.
func TestAppendJSONTimeIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		msk = time.FixedZone("MSK", 3*3600)
	}
	zones := []*time.Location{time.UTC, time.Local, msk, time.FixedZone("", -(9*3600 + 30*60)), time.FixedZone("", 5*3600+45*60),
		time.FixedZone("", 90), time.FixedZone("", 24*3600), time.FixedZone("", -23*3600-59*60)}
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	edges := []time.Time{time.Unix(0, 0), time.Unix(-1, 0), time.Unix(-1, 999999999), time.Date(2000, 2, 29, 23, 59, 59, 1, time.UTC),
		time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 2, 28, 12, 0, 0, 100, time.UTC), time.Unix(lo, 0), time.Unix(hi, 999999999),
		time.Unix(lo, 0).Add(-time.Nanosecond), time.Unix(hi+1, 0)}
	for i := 0; i < 100000; i++ {
		var at time.Time
		if i < len(edges)*len(zones) {
			at = edges[i/len(zones)]
		} else {
			ns := 0
			switch rng.IntN(3) {
			case 1:
				ns = rng.IntN(1e9)
			case 2:
				ns = rng.IntN(1000) * 1e6
			}
			at = time.Unix(lo+rng.Int64N(hi-lo), int64(ns))
		}
		at = at.In(zones[i%len(zones)])
		want, werr := at.MarshalJSON()
		got, gerr := AppendJSONTime([]byte("x"), at)
		if (werr != nil) != (gerr != nil) || werr == nil && string(got[1:]) != string(want) {
			t.Fatalf("%v: AppendJSONTime %s (%v), MarshalJSON %s (%v)", at, got, gerr, want, werr)
		}
	}
}

// BenchmarkReplicaJSON: a feed page of 5,000 cards with 5 lots each, as
// head office sends them.
func BenchmarkReplicaJSON(b *testing.B) {
	r := &Replica{Version: 1}
	at := time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC)
	exp := at.AddDate(1, 0, 0)
	for i := 0; i < 5000; i++ {
		c := ReplicaCard{Code: fmt.Sprintf("29%011d", 1000000+i*7), Kind: "bonus", State: checkout.StateActive,
			History: CardHistory{Month: "2026-11", PurchasesAllTime: checkout.MustMoney("15234.50"), AccruedMonth: checkout.MustPoints("120")}}
		r.Cards = append(r.Cards, c)
		for j := 0; j < 5; j++ {
			rem := checkout.MustPoints(fmt.Sprint(i % 50))
			r.Lots = append(r.Lots, ReplicaLot{ID: fmt.Sprintf("S%03d-T%02d-01K8%022d", i%300, j, i*5+j), Card: c.Code,
				Points: checkout.MustPoints(fmt.Sprint(10 + i%90)), Remaining: &rem, AccruedAt: at, ActiveFrom: &at, ExpiresAt: &exp,
				CheckID: fmt.Sprintf("S%03d-T%02d-C%06d", i%300, j, i)})
		}
	}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(r)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = r.AppendJSON(buf[:0])
		}
	})
}

// TestHistoryJSON: AppendHistoryJSON writes what json.Marshal writes, and
// DecodeHistory reads what json.Unmarshal reads (compared as they encode:
// decimals hold their value by pointer), by hand or not: the
// histories head office stores and reads for every card of every batch.
func TestHistoryJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		var h CardHistory
		if i%5 != 0 {
			r := randomReplica(rng, 1)
			h = r.Cards[0].History
		}
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendHistoryJSON(nil, &h); string(got) != string(want) {
			t.Fatalf("AppendHistoryJSON = %s, json.Marshal = %s", got, want)
		}
		if !scanHistory(jsonscan.New(want), new(CardHistory)) {
			t.Fatalf("%s read by encoding/json, not by hand", want)
		}
		back, err := DecodeHistory(want)
		if again, _ := json.Marshal(back); err != nil || string(again) != string(want) {
			t.Fatalf("DecodeHistory(%s) = %+v, %v; want %+v", want, back, err, h)
		}
	}
	for _, in := range []string{
		`{}`, ` {"month":"2026-11"} `, `null`, `{"Month":"2026-11"}`, `{"month":"2026-11","month":"2026-10"}`,
		`{"month":"2026\u002d11"}`, `{"purchases_month":"1.5"}`, `{"purchases_month":1.5}`, `{"purchases_month":"x"}`,
		`{"accrued_month":"0.5","redeemed_month":"-2"}`, `{"month":"2026-11"} x`, `{"other":1}`, `[]`, ``, `{`,
	} {
		var want CardHistory
		werr := json.Unmarshal([]byte(in), &want)
		got, err := DecodeHistory([]byte(in))
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if (err != nil) != (werr != nil) || err == nil && string(g) != string(w) {
			t.Errorf("DecodeHistory(%s) = %+v, %v; json.Unmarshal %+v, %v", in, got, err, want, werr)
		}
	}
}
