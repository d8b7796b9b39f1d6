package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scanner configures one barcode scanner. Several may be listed.
type Scanner struct {
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"` // hid, serial

	// HID: the device is found by vendor and product id (hex strings, "0c2e").
	VendorID  string `mapstructure:"vendor_id"`
	ProductID string `mapstructure:"product_id"`
	// HID: pick the unit with this USB serial number when several of one
	// model are plugged in. Empty: any.
	Serial string `mapstructure:"serial"`
	// HID: USB interface number of a composite scanner. Unset: the HID POS
	// interface if the device has one, else the keyboard one.
	Interface *int `mapstructure:"interface"`
	// HID POS report layout: auto (by vendor), honeywell or newland.
	HIDPOSLayout string `mapstructure:"hid_pos_layout"`

	// Serial: the port (a stable /dev/serial/by-id name works), speed and framing.
	Port    string        `mapstructure:"port"`
	Baud    int           `mapstructure:"baud"`
	Framing string        `mapstructure:"framing"` // cr, lf, crlf, stx_etx, gap
	Gap     time.Duration `mapstructure:"gap"`     // end of scan when no byte arrives for this long

	// Keyboard wedge: characters that end a scan (cr, lf, tab, or a hex
	// byte "0x23"). Empty: cr, lf, tab. GS can never be one.
	Terminators []string `mapstructure:"terminators"`
	// Keyboard wedge: shorter scans are dropped as noise. 0: 4.
	MinLength int `mapstructure:"min_length"`
}

// USBIDs returns the parsed vendor and product ids (validated by Load).
func (s *Scanner) USBIDs() (vid, pid uint16) {
	v, _ := strconv.ParseUint(strings.TrimPrefix(s.VendorID, "0x"), 16, 16)
	p, _ := strconv.ParseUint(strings.TrimPrefix(s.ProductID, "0x"), 16, 16)
	return uint16(v), uint16(p)
}

// TerminatorBytes returns the wedge terminators as bytes; nil means the default.
func (s *Scanner) TerminatorBytes() []byte {
	var out []byte
	for _, t := range s.Terminators {
		b, _ := terminator(t)
		out = append(out, b)
	}
	return out
}

func terminator(t string) (byte, error) {
	switch strings.ToLower(t) {
	case "cr":
		return '\r', nil
	case "lf":
		return '\n', nil
	case "tab":
		return '\t', nil
	}
	if h, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		if v, err := strconv.ParseUint(h, 16, 8); err == nil {
			if v == 0x1D {
				return 0, fmt.Errorf("GS (0x1d) separates GS1 element strings and cannot end a scan")
			}
			return byte(v), nil
		}
	}
	return 0, fmt.Errorf("must be cr, lf, tab or a hex byte like 0x23")
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
		for k, v := range map[string]string{"vendor_id": s.VendorID, "product_id": s.ProductID} {
			if _, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 16); v != "" && err != nil {
				bad(k, v, "must be 4 hex digits, e.g. 0c2e")
			}
		}
		if s.Interface != nil && (*s.Interface < 0 || *s.Interface > 31) {
			bad("interface", *s.Interface, "must be a USB interface number 0…31")
		}
		switch s.HIDPOSLayout {
		case "", "auto", "honeywell", "newland":
		default:
			bad("hid_pos_layout", s.HIDPOSLayout, "must be auto, honeywell or newland")
		}
		for i, t := range s.Terminators {
			if _, err := terminator(t); err != nil {
				bad(fmt.Sprintf("terminators[%d]", i), t, "%v", err)
			}
		}
		if s.MinLength < 0 || s.MinLength > 100 {
			bad("min_length", s.MinLength, "must be 0…100")
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
	if s.Gap != 0 && (s.Gap < time.Millisecond || s.Gap > 2*time.Second) {
		bad("gap", s.Gap, "must be between 1ms and 2s")
	}
	return errs
}
