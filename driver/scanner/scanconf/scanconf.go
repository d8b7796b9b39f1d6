// Package scanconf turns the configuration's scanners and classify sections
// into drivers and a classifier, so that tillagent and tillctl wire scanners
// the same way. Drivers and the classifier themselves know nothing of config.
package scanconf

import (
	"log/slog"
	"time"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/hidscan"
	"tillagent/driver/scanner/serialscan"
	"tillagent/internal/config"
)

// Driver builds the driver for one configured scanner (validated by config.Load).
func Driver(c config.Scanner, log *slog.Logger) scanner.Driver {
	switch c.Type {
	case "hid":
		vid, pid := c.USBIDs()
		iface := -1
		if c.Interface != nil {
			iface = *c.Interface
		}
		layout := hidscan.LayoutAuto
		switch c.HIDPOSLayout {
		case "honeywell":
			layout = hidscan.LayoutHoneywell
		case "newland":
			layout = hidscan.LayoutNewland
		}
		return hidscan.New(hidscan.Config{
			Name: c.Name, VendorID: vid, ProductID: pid, Serial: c.Serial, Interface: iface,
			Wedge: hidscan.WedgeConfig{Terminators: c.TerminatorBytes(), Gap: c.Gap, MinLen: c.MinLength},
			POS:   hidscan.POSConfig{Layout: layout},
			Log:   log,
		})
	default:
		return serialscan.New(serialscan.Config{
			Name: c.Name, Port: c.Port, Baud: c.Baud,
			Framer: serialscan.FramerConfig{Framing: serialscan.Framing(c.Framing), Gap: c.Gap},
			Log:    log,
		})
	}
}

// Drivers builds every configured scanner.
func Drivers(cs []config.Scanner, log *slog.Logger) []scanner.Driver {
	out := make([]scanner.Driver, 0, len(cs))
	for _, c := range cs {
		out = append(out, Driver(c, log))
	}
	return out
}

// Classifier builds the classifier; keys is normally the store.
func Classifier(c config.Classify, keys classify.KeySource, now func() time.Time) *classify.Classifier {
	return classify.New(classify.Config{
		LoyaltyPrefixes:   c.LoyaltyPrefixes,
		LoyaltyLengths:    c.LoyaltyLengths,
		LoyaltyCheckDigit: c.LoyaltyCheckDigit,
		CardQRPrefix:      c.CardQRPrefix,
		TokenQRPrefix:     c.TokenQRPrefix,
		CouponPrefixes:    c.CouponPrefixes,
		TokenWindow:       c.TokenWindow,
		ClockSkew:         c.ClockSkew,
		DuplicateWindow:   c.DuplicateWindow,
		ReplayCapacity:    c.ReplayCapacity,
	}, keys, now)
}
