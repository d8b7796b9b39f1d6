package config

import (
	"fmt"
	"time"
)

// Sale configures the checks made on a sale's and a return's money before
// anything is printed, and how long the till keeps a finished sale.
type Sale struct {
	// MaxChangeKop caps the change of a cash payment, in kopecks: a buyer
	// never needs more change than the largest banknote (5,000 ₽), so more
	// is a mistyped tendered amount. 0: no cap.
	MaxChangeKop int64 `mapstructure:"max_change_kop"`
	// CashRefundOfCard lets `refund: cash` pay back in cash what a bank
	// card paid. Off (the default): the card's part goes back to the card.
	CashRefundOfCard bool `mapstructure:"cash_refund_of_card"`
	// KeepDays is how many days a finished sale stays whole on the till,
	// for its returns and retries; older ones are pruned to their id and
	// fiscal number. 0 keeps every sale.
	KeepDays int `mapstructure:"keep_days"`
}

// minKeepDays is the shortest keep_days: a buyer may return goods of
// proper quality within 14 days of the purchase, not counting its day
// (Закон о защите прав потребителей, ст. 25).
const minKeepDays = 15

// Keep is KeepDays as a duration (0: keep everything).
func (s Sale) Keep() time.Duration { return time.Duration(s.KeepDays) * 24 * time.Hour }

// DefaultSale is the sale section's defaults.
func DefaultSale() Sale { return Sale{MaxChangeKop: 500_000, KeepDays: 1095} }

func (s *Sale) validate(file string) []error {
	var errs []error
	if s.MaxChangeKop < 0 {
		errs = append(errs, &FieldError{File: file, Key: "sale.max_change_kop", Value: s.MaxChangeKop,
			Err: fmt.Errorf("must be 0 (no cap) or a positive number of kopecks, e.g. 500000 for 5,000 ₽")})
	}
	if s.KeepDays != 0 && (s.KeepDays < minKeepDays || s.KeepDays > 100*365) {
		errs = append(errs, &FieldError{File: file, Key: "sale.keep_days", Value: s.KeepDays,
			Err: fmt.Errorf("must be 0 (keep every sale) or %d to 36500 days: a buyer may return goods within 14 days, defective ones within the warranty (1095, the default, covers the 2-year claim period)", minKeepDays)})
	}
	return errs
}
