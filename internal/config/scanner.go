package config

import (
	"fmt"
	"time"
)

// Scanner configures one barcode scanner. Several may be listed.
type Scanner struct {
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"` // hid, serial

	// HID: the device is found by vendor and product id (hex strings, "0c2e").
	VendorID  string `mapstructure:"vendor_id"`
	ProductID string `mapstructure:"product_id"`

	// Serial: the port (a stable /dev/serial/by-id name works), speed and framing.
	Port    string        `mapstructure:"port"`
	Baud    int           `mapstructure:"baud"`
	Framing string        `mapstructure:"framing"` // cr, lf, crlf, stx_etx, gap
	Gap     time.Duration `mapstructure:"gap"`     // end of scan when no byte arrives for this long
}

func (s *Scanner) validate(file, key string) []error {
	var errs []error
	bad := func(k string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: key + "." + k, Value: val, Err: fmt.Errorf(format, args...)})
	}
	if s.Name == "" {
		bad("name", `""`, "must not be empty")
	}
	switch s.Type {
	case "hid":
		if s.VendorID == "" || s.ProductID == "" {
			bad("vendor_id", s.VendorID, "hid scanners need vendor_id and product_id")
		}
	case "serial":
		if s.Port == "" {
			bad("port", `""`, "required for a serial scanner")
		}
		if s.Baud != 0 && !validBauds[s.Baud] {
			bad("baud", s.Baud, "not a standard speed")
		}
		switch s.Framing {
		case "", "cr", "lf", "crlf", "stx_etx", "gap":
		default:
			bad("framing", s.Framing, "must be cr, lf, crlf, stx_etx or gap")
		}
	default:
		bad("type", s.Type, "must be hid or serial")
	}
	return errs
}
