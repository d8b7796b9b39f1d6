package sale

import (
	"errors"
	"testing"

	"tillagent/driver/fiscal"
)

// How a refund is split, and when cash may not pay back a card's part.
func TestRefundPayments(t *testing.T) {
	for _, c := range []struct {
		name       string
		m          fiscal.Money
		left       fiscal.Payments
		how        string
		cardToCash bool
		want       fiscal.Payments
		code       string
	}{
		{"default: card first", 8990, fiscal.Payments{Cash: 3900, Electronic: 5090}, "", false, fiscal.Payments{Cash: 3900, Electronic: 5090}, ""},
		{"default: all to the card", 5000, fiscal.Payments{Cash: 3900, Electronic: 5090}, "", false, fiscal.Payments{Electronic: 5000}, ""},
		{"cash within the cash paid", 6100, fiscal.Payments{Cash: 10000, Electronic: 5090}, "cash", false, fiscal.Payments{Cash: 6100}, ""},
		{"cash taking in the card's part", 8990, fiscal.Payments{Cash: 3900, Electronic: 5090}, "cash", false, fiscal.Payments{}, "return.refund_to_card"},
		{"cash of a card-only sale", 100, fiscal.Payments{Electronic: 17980}, "cash", false, fiscal.Payments{}, "return.refund_to_card"},
		{"cash of a card's part, allowed", 8990, fiscal.Payments{Cash: 3900, Electronic: 5090}, "cash", true, fiscal.Payments{Cash: 8990}, ""},
		{"cash over the cash left, card fully refunded", 8990, fiscal.Payments{Cash: 8989}, "cash", false, fiscal.Payments{Cash: 8990}, ""},
		{"a zero refund (all points)", 0, fiscal.Payments{Electronic: 17980}, "cash", false, fiscal.Payments{}, ""},
		{"electronic over the card's part", 8990, fiscal.Payments{Cash: 3900, Electronic: 5090}, "electronic", false, fiscal.Payments{}, "return.refund"},
		{"unknown way", 100, fiscal.Payments{Cash: 100}, "cheque", false, fiscal.Payments{}, "return.refund"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := refundPayments(c.m, c.left, c.how, c.cardToCash)
			var e *Error
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.code != "" && (!errors.As(err, &e) || e.Code != c.code || e.Class != Invalid):
				t.Fatalf("err %v, want %s", err, c.code)
			case got != c.want:
				t.Fatalf("refund %+v, want %+v", got, c.want)
			}
		})
	}
}
