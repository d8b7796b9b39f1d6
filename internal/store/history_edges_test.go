package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"tillagent/checkout"
	"tillagent/internal/jsonscan"
)

// edgeHistoryIsUnmarshal fails t unless DecodeHistory reads data as
// json.Unmarshal (what head office used before) reads it, error or value,
// and, when it reads it, unless the history written back (what ingestion
// and the ERP import store) is json.Marshal's bytes, is read by hand and
// reads back the same.
func edgeHistoryIsUnmarshal(t testing.TB, data []byte) {
	t.Helper()
	got, err := DecodeHistory(data)
	var want CardHistory
	wantErr := json.Unmarshal(data, &want)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("DecodeHistory(%q): error %v, json.Unmarshal %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeHistory(%q) = %#v, json.Unmarshal %#v", data, got, want)
	}
	again := AppendHistoryJSON(nil, &got)
	marshal, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, marshal) {
		t.Fatalf("history of %q written back as %q, json.Marshal writes %q", data, again, marshal)
	}
	// Written without an escape (json.Marshal escapes <, >, &, U+2028,
	// U+2029 and bad UTF-8), it is read by hand, not by encoding/json.
	var byHand CardHistory
	s := jsonscan.New(again)
	if !bytes.ContainsRune(again, '\\') && (!scanHistory(s, &byHand) || s.Pos() != len(again)) {
		t.Fatalf("history written back %q is not read by hand", again)
	}
	// Read back, it is the same history (its decimals maybe with another
	// exponent, "1e3" read back from "1000", as before): written again, the
	// same bytes.
	back, err := DecodeHistory(again)
	if err != nil {
		t.Fatalf("history written back %q does not read back: %v", again, err)
	}
	if twice := AppendHistoryJSON(nil, &back); !bytes.Equal(twice, again) {
		t.Fatalf("history written back %q, read and written again %q", again, twice)
	}
}

// TestHistoryStoredByOlderCode: histories as head office stored them
// before (json.Marshal's bytes, the column's default {}), as an operator or
// another tool may have written them (white space, keys in another order
// or case, numbers, duplicates, unknown keys, escapes, null) and broken
// ones: each reads as json.Unmarshal reads it, and is written back as
// json.Marshal writes it.
func TestHistoryStoredByOlderCode(t *testing.T) {
	full := CardHistory{Month: "2026-11", PurchasesAllTime: checkout.MustMoney("123456.78"), PurchasesMonth: checkout.MustMoney("12.5"),
		PurchasesPrevMonth: checkout.MustMoney("0.01"), AccruedMonth: checkout.MustPoints("12.345"), RedeemedMonth: checkout.MustPoints("100")}
	marshalled, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{
		string(marshalled), `{}`, ` {} `, "\n{\n}\n", `{"month":"2026-11"}`,
		`{"redeemed_month":"100","accrued_month":"12.345","purchases_prev_month":"0.01","purchases_month":"12.50","purchases_all_time":"123456.78","month":"2026-11"}`,
		"{ \"month\" : \"2026-11\" ,\n\t\"purchases_month\" : \"12.50\" }\r\n",
		`{"purchases_month":"12.5"}`, `{"purchases_month":"1e2"}`, `{"purchases_month":12.5}`, `{"purchases_month":0}`,
		`{"purchases_month":"0.00"}`, `{"purchases_month":"-0"}`, `{"purchases_month":"-12.30"}`, `{"purchases_all_time":"99999999999999999999.99"}`,
		`{"purchases_month":"12.345"}`, `{"purchases_month":"abc"}`, `{"purchases_month":""}`, `{"purchases_month":null}`,
		`{"accrued_month":"1e-30"}`, `{"accrued_month":"-5"}`, `{"accrued_month":"5E+3"}`, `{"accrued_month":5}`, `{"accrued_month":"0.000"}`,
		`{"redeemed_month":" 5"}`, `{"redeemed_month":"5 "}`, `{"redeemed_month":"\u0035"}`,
		`{"month":"2026-11","month":"2026-12"}`, `{"Month":"2026-11"}`, `{"MONTH":"2026-11","month":"2026-12"}`, `{"ſmonth":"x"}`,
		`{"month":"2026-11","tier":"gold"}`, `{"month":null}`, `{"month":5}`, `{"month":"\u0032026-11"}`, "{\"month\":\"\xff\"}",
		`{"month":"a\u2028b"}`, `{"month":"<&>"}`, `{"month":{"a":1}}`, `{"month":["x"]}`,
		`null`, ` null `, `[]`, `""`, `0`, `true`, ``, ` `, `{`, `}`, `{}x`, `{} {}`, `{},`, `{"month":"2026-11",}`, "\ufeff{}",
		`{"month":"2026-11"}` + "\x00", `{"accrued_month":"5","accrued_month":"6"}`, `{"purchases_month":"1","PURCHASES_MONTH":"2"}`,
	}
	for _, f := range forms {
		edgeHistoryIsUnmarshal(t, []byte(f))
	}
}

// TestHistoryRandom: random histories are written by AppendHistoryJSON
// as json.Marshal writes them (empty fields left out as omitempty and
// omitzero leave them), and read back by hand to the same history.
func TestHistoryRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 17))
	money := func() checkout.Money {
		if r.IntN(3) == 0 {
			return checkout.Money{}
		}
		m, err := checkout.ParseMoney(fmt.Sprintf("%d.%02d", r.Int64N(1e12)-1e11, r.IntN(100)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	points := func() checkout.Points {
		switch r.IntN(4) {
		case 0:
			return checkout.Points{}
		case 1:
			return checkout.MustPoints([]string{"0", "-0.000", "1e-9", "123456789012345678901234567890.123456789", "5E+3", "-7.5"}[r.IntN(6)])
		}
		return checkout.MustPoints(fmt.Sprintf("%d.%d", r.Int64N(1e9), r.IntN(1000)))
	}
	months := []string{"", "2026-11", "1999-01", "<&>", "\u2028", "\xff", "\"", "месяц"}
	for range 5000 {
		h := CardHistory{Month: months[r.IntN(len(months))], PurchasesAllTime: money(), PurchasesMonth: money(), PurchasesPrevMonth: money(),
			AccruedMonth: points(), RedeemedMonth: points()}
		got := AppendHistoryJSON([]byte("x"), &h)
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("AppendHistoryJSON(%#v) = %q, json.Marshal %q", h, got[1:], want)
		}
		edgeHistoryIsUnmarshal(t, want)
	}
}

// FuzzDecodeHistory: whatever bytes a history column holds, DecodeHistory
// reads them as json.Unmarshal does, and writes them back as json.Marshal.
//
//	go test ./internal/store/ -run '^$' -fuzz '^FuzzDecodeHistory$' -fuzztime 60s -parallel 1
func FuzzDecodeHistory(f *testing.F) {
	for _, s := range []string{`{}`, `{"month":"2026-11","purchases_all_time":"1.00","accrued_month":"5"}`, ` {"redeemed_month":"1e3"} `,
		`{"month":"2026-11","month":"x"}`, `null`, `{"purchases_month":12.5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		edgeHistoryIsUnmarshal(t, data)
	})
}
