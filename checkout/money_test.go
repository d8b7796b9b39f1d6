package checkout

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
)

func TestMoneyParseAndJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		kopecks int64
		wantErr bool
	}{
		{`"123.45"`, "123.45", 12345, false},
		{`"100"`, "100.00", 10000, false},
		{`89.9`, "89.90", 8990, false},
		{`"0.01"`, "0.01", 1, false},
		{`"-5.50"`, "-5.50", -550, false},
		{`"1.005"`, "", 0, true}, // fractions of a kopeck are refused, not rounded
		{`"abc"`, "", 0, true},
		{`null`, "", 0, true},
		{`"\u0031\u0032"`, "12.00", 1200, false}, // escapes undone as encoding/json does
		{`""`, "", 0, true},
		{`" 1"`, "", 0, true},
	}
	for _, tt := range tests {
		var m Money
		err := json.Unmarshal([]byte(tt.in), &m)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v", tt.in, err)
			continue
		}
		if tt.wantErr {
			continue
		}
		if m.String() != tt.want || m.Kopecks() != tt.kopecks {
			t.Errorf("%s: got %s / %d kopecks, want %s / %d", tt.in, m, m.Kopecks(), tt.want, tt.kopecks)
		}
		b, _ := json.Marshal(m)
		if string(b) != `"`+tt.want+`"` {
			t.Errorf("%s: marshals to %s", tt.in, b)
		}
	}
}

func TestMoneyRounding(t *testing.T) {
	d := decimal.RequireFromString("10.005")
	if got := MoneyHalfUp(d).String(); got != "10.01" {
		t.Errorf("half up 10.005 = %s", got)
	}
	if got := MoneyDown(d).String(); got != "10.00" {
		t.Errorf("down 10.005 = %s", got)
	}
	if got := Kopecks(123456).String(); got != "1234.56" {
		t.Errorf("kopecks = %s", got)
	}
	// Kopecks() of a value with an unusual exponent still works.
	if got := (Money{decimal.New(5, 1)}).Kopecks(); got != 5000 {
		t.Errorf("50 roubles = %d kopecks", got)
	}
}

func TestPointsAndOthersJSON(t *testing.T) {
	var v struct {
		P Points    `json:"p"`
		C Percent   `json:"c"`
		Q Qty       `json:"q"`
		F Factor    `json:"f"`
		L LocalTime `json:"l"`
	}
	if err := json.Unmarshal([]byte(`{"p":"12.5","c":5,"q":"0.365","f":"1.5","l":"2026-11-23T10:00"}`), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if want := `{"p":"12.5","c":"5","q":"0.365","f":"1.5","l":"2026-11-23T10:00:00"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	for _, bad := range []string{`"2026-13-01"`, `"23.11.2026"`, `5`} {
		var l LocalTime
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("local time %s accepted", bad)
		}
	}
}

func TestRoundingValid(t *testing.T) {
	for _, r := range []Rounding{{}, {Scale: 2, Mode: RoundHalfUp}, {Scale: 4, Mode: RoundHalfEven}} {
		if err := r.Valid(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for _, r := range []Rounding{{Scale: -1}, {Scale: 5}, {Mode: "ceiling"}} {
		if err := r.Valid(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}
