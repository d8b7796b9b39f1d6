package config

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// API configures the local API for the till UI.
type API struct {
	// Socket is the Unix socket path; empty disables it.
	Socket string `mapstructure:"socket"`
	// SocketMode is the socket's permission bits, octal ("0660").
	SocketMode string `mapstructure:"socket_mode"`
	// SocketGroup, if set, owns the socket (the till UI's group).
	SocketGroup string `mapstructure:"socket_group"`
	// TCP is a loopback address ("127.0.0.1:8765"); empty disables it.
	TCP string `mapstructure:"tcp"`
	// Token is the bearer token the TCP listener requires; TokenFile reads
	// it from a file instead (kept out of the YAML).
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	// AllowedOrigins lists the exact browser origins allowed to call.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
}

// Receipt configures how sales are printed.
type Receipt struct {
	// BonusMode: discount (points lower the line prices, default) or
	// counter_provision (full prices, points paid as tag 1217).
	BonusMode string `mapstructure:"bonus_mode"`
	// LoyaltyTagName is tag 1085 of the loyalty requisite.
	LoyaltyTagName string `mapstructure:"loyalty_tag_name"`
	// TaxSystem is tag 1055's bit number (0 ОСН, 1 УСН доход, 2 УСН доход−расход, 4 ЕСХН, 5 ПСН).
	TaxSystem int `mapstructure:"tax_system"`
	// ExpiringDays is the "expiring soon" horizon of card lookups.
	ExpiringDays int `mapstructure:"expiring_days"`
}

// Demo turns on what `make run` needs to show the agent without hardware.
type Demo struct {
	// VirtualScanner adds a serial scanner on an internal pty; codes typed
	// with `tillctl demo scan CODE` go through the real serial driver.
	VirtualScanner bool `mapstructure:"virtual_scanner"`
	// EmulatorJournal is where the built-in printer emulator keeps its
	// electronic journal; its FD counter continues from it on restart.
	EmulatorJournal string `mapstructure:"emulator_journal"`
}

// DefaultAPI is the api section's defaults.
func DefaultAPI() API { return API{Socket: "var/tillagent.sock", SocketMode: "0660"} }

// DefaultReceipt is the receipt section's defaults.
func DefaultReceipt() Receipt {
	return Receipt{BonusMode: "discount", LoyaltyTagName: "Бонусная карта", ExpiringDays: 30}
}

// Mode returns the socket mode (validated).
func (a *API) Mode() os.FileMode {
	m, _ := strconv.ParseUint(a.SocketMode, 8, 32)
	return os.FileMode(m)
}

// BearerToken returns the token, reading TokenFile when set.
func (a *API) BearerToken() (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (a *API) validate(file string) []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: "api." + key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	if a.Socket == "" && a.TCP == "" {
		bad("socket", `""`, "api.socket and api.tcp are both empty: the till UI could not reach the agent")
	}
	if m, err := strconv.ParseUint(a.SocketMode, 8, 32); err != nil || m > 0o777 || m&0o600 != 0o600 {
		bad("socket_mode", a.SocketMode, "must be octal permission bits with owner read/write, e.g. 0660")
	} else if m&0o007 != 0 {
		bad("socket_mode", a.SocketMode, "must not give others access (the socket sells): use 0660 and api.socket_group")
	}
	if a.TCP != "" {
		host, _, err := net.SplitHostPort(a.TCP)
		ip := net.ParseIP(host)
		switch {
		case err != nil:
			bad("tcp", a.TCP, "want HOST:PORT, e.g. 127.0.0.1:8765")
		case host != "localhost" && (ip == nil || !ip.IsLoopback()):
			bad("tcp", a.TCP, "must be a loopback address: the API is for this till only")
		}
		if a.Token == "" && a.TokenFile == "" {
			bad("token", `""`, "required when api.tcp is set (or api.token_file)")
		} else if a.Token != "" && len(a.Token) < 16 {
			bad("token", "(hidden)", "must be at least 16 characters")
		}
	}
	for i, o := range a.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") {
			bad(fmt.Sprintf("allowed_origins[%d]", i), o, "want an exact origin like http://localhost:3000 (scheme, host, port; no path)")
		}
	}
	return errs
}

func (r *Receipt) validate(file string) []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: "receipt." + key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	if r.BonusMode != "discount" && r.BonusMode != "counter_provision" {
		bad("bonus_mode", r.BonusMode, "must be discount or counter_provision")
	}
	if n := len([]rune(r.LoyaltyTagName)); n == 0 || n > 64 {
		bad("loyalty_tag_name", r.LoyaltyTagName, "must be 1…64 characters (tag 1085)")
	}
	switch r.TaxSystem {
	case 0, 1, 2, 4, 5:
	default:
		bad("tax_system", r.TaxSystem, "must be 0 (ОСН), 1 (УСН доход), 2 (УСН доход−расход), 4 (ЕСХН) or 5 (ПСН)")
	}
	if r.ExpiringDays < 1 || r.ExpiringDays > 366 {
		bad("expiring_days", r.ExpiringDays, "must be 1…366")
	}
	return errs
}
