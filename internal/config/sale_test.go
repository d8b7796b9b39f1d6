package config

import (
	"errors"
	"strings"
	"testing"
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
