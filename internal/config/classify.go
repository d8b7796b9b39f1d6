package config

import (
	"fmt"
	"strings"
	"time"
)

// Classify is what a scan means: which numbers are loyalty cards, which QR
// codes are virtual cards and coupons, and how signed virtual-card tokens
// are checked offline. Everything else goes to the till UI as a product code
// or "unknown".
type Classify struct {
	// Loyalty card numbers: digits only, starting with one of the prefixes,
	// of one of the lengths, with a GS1 mod-10 check digit when set.
	LoyaltyPrefixes   []string `mapstructure:"loyalty_prefixes"`
	LoyaltyLengths    []int    `mapstructure:"loyalty_lengths"`
	LoyaltyCheckDigit bool     `mapstructure:"loyalty_check_digit"`
	// A phone QR holding a static card number: this prefix, then the number.
	CardQRPrefix string `mapstructure:"card_qr_prefix"`
	// A phone QR holding a signed rotating token (docs/scanners.md).
	TokenQRPrefix  string   `mapstructure:"token_qr_prefix"`
	CouponPrefixes []string `mapstructure:"coupon_prefixes"`
	// Token window length; must equal the issuer's.
	TokenWindow time.Duration `mapstructure:"token_window"`
	// Accepted difference between the till's and the issuer's clocks.
	ClockSkew time.Duration `mapstructure:"clock_skew"`
	// The same token again within this is one presentation, not a replay.
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	// How many used tokens the till remembers to refuse replays.
	ReplayCapacity int `mapstructure:"replay_capacity"`
}

// DefaultClassify is the classify section's defaults.
func DefaultClassify() Classify {
	return Classify{
		// GS1 prefixes 20–29 are for in-store use. Weighed and priced
		// goods commonly take 20–25 (the scale prints them), so the chain's
		// cards live in 26–29; a card prefix of 2x must never collide
		// with a scale label.
		LoyaltyPrefixes:   []string{"26", "27", "28", "29"},
		LoyaltyLengths:    []int{13},
		LoyaltyCheckDigit: true,
		CardQRPrefix:      "LC0:",
		TokenQRPrefix:     "LC1:",
		CouponPrefixes:    []string{"99"},
		TokenWindow:       time.Minute,
		ClockSkew:         90 * time.Second,
		DuplicateWindow:   time.Second,
		ReplayCapacity:    4096,
	}
}

func (c *Classify) validate(file string) []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: "classify." + key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	for i, p := range c.LoyaltyPrefixes {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			bad(fmt.Sprintf("loyalty_prefixes[%d]", i), p, "must be digits")
		}
	}
	for i, l := range c.LoyaltyLengths {
		if l < 4 || l > 30 {
			bad(fmt.Sprintf("loyalty_lengths[%d]", i), l, "must be 4…30 digits")
		}
	}
	if c.TokenQRPrefix == "" {
		bad("token_qr_prefix", `""`, "must not be empty")
	}
	if c.CardQRPrefix != "" && c.CardQRPrefix == c.TokenQRPrefix {
		bad("card_qr_prefix", c.CardQRPrefix, "must differ from token_qr_prefix")
	}
	for i, p := range c.CouponPrefixes {
		if p == "" {
			bad(fmt.Sprintf("coupon_prefixes[%d]", i), `""`, "must not be empty (it would match everything)")
		}
	}
	if c.TokenWindow < 5*time.Second || c.TokenWindow > time.Hour {
		bad("token_window", c.TokenWindow, "must be between 5s and 1h")
	}
	if c.ClockSkew < 0 || c.ClockSkew > 15*time.Minute {
		bad("clock_skew", c.ClockSkew, "must be between 0 and 15m")
	}
	if c.DuplicateWindow < 0 || c.DuplicateWindow > 10*time.Second {
		bad("duplicate_window", c.DuplicateWindow, "must be between 0 and 10s")
	}
	if c.ReplayCapacity < 16 || c.ReplayCapacity > 1<<20 {
		bad("replay_capacity", c.ReplayCapacity, "must be between 16 and 1048576")
	}
	return errs
}
