package config

import (
	"fmt"
	"time"
)

// Printer configures the fiscal printer. Type "emulator" runs the built-in
// Shtrih-M emulator on an internal pty, so no hardware is needed.
type Printer struct {
	Type          string        `mapstructure:"type"` // shtrih, emulator, none
	Port          string        `mapstructure:"port"`
	Baud          int           `mapstructure:"baud"`
	Password      int           `mapstructure:"password"`       // operator password
	AdminPassword int           `mapstructure:"admin_password"` // system administrator password
	ByteTimeout   time.Duration `mapstructure:"byte_timeout"`
	// AnswerTimeout, when set, replaces the vendor's per-command answer
	// timeouts (3 s for status … 120 s for shift open).
	AnswerTimeout time.Duration `mapstructure:"answer_timeout"`
}

// DefaultPrinter is the printer section's defaults.
func DefaultPrinter() Printer {
	return Printer{Type: "emulator", Baud: 115200, Password: 30, AdminPassword: 30, ByteTimeout: 150 * time.Millisecond}
}

var validBauds = map[int]bool{2400: true, 4800: true, 9600: true, 19200: true, 38400: true, 57600: true, 115200: true, 230400: true, 460800: true, 921600: true}

func (p *Printer) validate(file string) []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: "printer." + key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	switch p.Type {
	case "shtrih":
		if p.Port == "" {
			bad("port", `""`, "required when printer.type is shtrih")
		}
	case "emulator", "none":
	default:
		bad("type", p.Type, "must be shtrih, emulator or none")
	}
	if !validBauds[p.Baud] {
		bad("baud", p.Baud, "not a speed the protocol supports (2400…921600)")
	}
	if p.Password < 1 || p.Password > 99999999 {
		bad("password", p.Password, "must be 1…99999999")
	}
	if p.AdminPassword < 1 || p.AdminPassword > 99999999 {
		bad("admin_password", p.AdminPassword, "must be 1…99999999")
	}
	if p.AnswerTimeout != 0 && (p.AnswerTimeout < 500*time.Millisecond || p.AnswerTimeout > 5*time.Minute) {
		bad("answer_timeout", p.AnswerTimeout, "must be 0 (vendor table) or between 500ms and 5m")
	}
	if p.ByteTimeout < 10*time.Millisecond || p.ByteTimeout > 5*time.Second {
		bad("byte_timeout", p.ByteTimeout, "must be between 10ms and 5s")
	}
	return errs
}
