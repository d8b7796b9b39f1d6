package config

import "fmt"

// Sale configures the checks made on a sale's and a return's money before
// anything is printed.
type Sale struct {
	// MaxChangeKop caps the change of a cash payment, in kopecks: a buyer
	// never needs more change than the largest banknote (5,000 ₽), so more
	// is a mistyped tendered amount. 0: no cap.
	MaxChangeKop int64 `mapstructure:"max_change_kop"`
	// CashRefundOfCard lets `refund: cash` pay back in cash what a bank
	// card paid. Off (the default): the card's part goes back to the card.
	CashRefundOfCard bool `mapstructure:"cash_refund_of_card"`
}

// DefaultSale is the sale section's defaults.
func DefaultSale() Sale { return Sale{MaxChangeKop: 500_000} }

func (s *Sale) validate(file string) []error {
	if s.MaxChangeKop < 0 {
		return []error{&FieldError{File: file, Key: "sale.max_change_kop", Value: s.MaxChangeKop,
			Err: fmt.Errorf("must be 0 (no cap) or a positive number of kopecks, e.g. 500000 for 5,000 ₽")}}
	}
	return nil
}
