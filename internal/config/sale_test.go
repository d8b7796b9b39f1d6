package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The sale section: the example documents the defaults, the environment
// overrides it, and a negative cap is refused naming the key and the file.
func TestSaleSection(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sale != DefaultSale() || c.Sale.MaxChangeKop != 500_000 || c.Sale.CashRefundOfCard {
		t.Fatalf("config.example.yaml sale %+v, want the defaults %+v", c.Sale, DefaultSale())
	}

	t.Setenv("TILLAGENT_SALE_MAX_CHANGE_KOP", "0")
	t.Setenv("TILLAGENT_SALE_CASH_REFUND_OF_CARD", "true")
	c, err = Load(write(t, "log:\n  level: info\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sale.MaxChangeKop != 0 || !c.Sale.CashRefundOfCard {
		t.Fatalf("environment not applied: %+v", c.Sale)
	}

	t.Setenv("TILLAGENT_SALE_MAX_CHANGE_KOP", "")
	t.Setenv("TILLAGENT_SALE_CASH_REFUND_OF_CARD", "")
	p := write(t, "sale:\n  max_change_kop: -1\n")
	_, err = Load(p)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "sale.max_change_kop" || !strings.Contains(err.Error(), p) {
		t.Fatalf("negative cap: %v, want a FieldError on sale.max_change_kop naming %s", err, p)
	}
}

// sale.keep_days: 1095 by default; 0 keeps every sale; a keeping age
// shorter than the 14-day return period, or negative, is refused naming
// the key; the environment overrides it.
func TestKeepDays(t *testing.T) {
	if d := DefaultSale(); d.KeepDays != 1095 || d.Keep() != 1095*24*time.Hour {
		t.Fatalf("default %+v", d)
	}
	for yaml, want := range map[string]int{"sale:\n  keep_days: 0\n": 0, "sale:\n  keep_days: 15\n": 15, "sale:\n  keep_days: 400\n": 400} {
		c, err := Load(write(t, yaml))
		if err != nil || c.Sale.KeepDays != want {
			t.Errorf("%q: %+v %v, want %d", yaml, c.Sale, err, want)
		}
	}
	for _, yaml := range []string{"sale:\n  keep_days: 14\n", "sale:\n  keep_days: -1\n", "sale:\n  keep_days: 40000\n"} {
		_, err := Load(write(t, yaml))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Key != "sale.keep_days" || !strings.Contains(err.Error(), "14 days") {
			t.Errorf("%q: %v, want a FieldError on sale.keep_days naming the return period", yaml, err)
		}
	}
	t.Setenv("TILLAGENT_SALE_KEEP_DAYS", "30")
	if c, err := Load(write(t, "log:\n  level: info\n")); err != nil || c.Sale.KeepDays != 30 {
		t.Errorf("environment: %+v %v", c.Sale, err)
	}
}

// Numbers the weak decoding would bend are refused, naming the key: a
// number with a decimal point or an exponent for an integer key (5000.00,
// meant as roubles, read as 5000 kopecks would cap change at 50 ₽), a
// number other than 0 or 1 for a yes/no key; an
// error that may be an environment variable's names the variables set.
func TestNumbersNotBent(t *testing.T) {
	for yaml, want := range map[string]string{
		"sale:\n  max_change_kop: 5000.00\n":              "sale.max_change_kop",
		"sale:\n  max_change_kop: 5000.7\n":               "want a whole number",
		"sale:\n  max_change_kop: 99999999999999999999\n": "want a whole number",
		"sale:\n  max_change_kop: 1e5\n":                  "want a whole number",
		"printer:\n  baud: 9600.5\n":                      "printer.baud",
		"sale:\n  cash_refund_of_card: 2\n":               "want true or false",
	} {
		_, err := Load(write(t, yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", yaml, err, want)
		}
	}
	for yaml, want := range map[string]int64{"sale:\n  max_change_kop: 250000\n": 250000, "sale:\n  max_change_kop: 0\n": 0} {
		c, err := Load(write(t, yaml))
		if err != nil || c.Sale.MaxChangeKop != want {
			t.Errorf("%q: %+v %v, want %d", yaml, c.Sale, err, want)
		}
	}
	t.Setenv("TILLAGENT_SALE_MAX_CHANGE_KOP", "abc")
	_, err := Load(write(t, "log:\n  level: info\n"))
	if err == nil || !strings.Contains(err.Error(), "environment overrides TILLAGENT_SALE_MAX_CHANGE_KOP") {
		t.Errorf("bad environment value: %v, want the variable named", err)
	}
}
