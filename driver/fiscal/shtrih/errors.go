package shtrih

import (
	"errors"
	"fmt"
)

// DeviceError is a non-zero ERR byte in an answer. Code is the protocol's
// error byte and stays stable; Hint says what a person or the driver should do.
type DeviceError struct {
	Op   string // what the driver was doing: "open receipt"
	Port string
	Cmd  uint16
	Code byte
}

type errInfo struct {
	text, hint, health string
	transient          bool
}

// errTable is §8 of the spec. health is the stable code the UI translates.
var errTable = map[byte]errInfo{
	0x01: {"FN: unknown command or bad format", "driver bug: report it", "printer.protocol", false},
	0x02: {"FN: wrong FN state for this command", "resynchronise state (FN status)", "printer.state", false},
	0x03: {"FN failure", "call service: replace or repair the FN", "printer.fn_failure", false},
	0x04: {"FN crypto module failure", "call service", "printer.fn_failure", false},
	0x05: {"FN: parameters do not fit FN life phase", "check FN registration", "printer.fn_phase", false},
	0x07: {"FN: wrong date/time", "check the printer clock", "printer.clock", false},
	0x08: {"FN: no requested data", "", "printer.no_data", false},
	0x09: {"FN: wrong parameter value", "driver bug: report it", "printer.protocol", false},
	0x10: {"FN: TLV data too large", "split the requisite", "printer.protocol", false},
	0x11: {"FN: no transport connection to OFD", "check the OFD connection", "printer.ofd", true},
	0x12: {"FN resource exhausted", "replace the FN", "printer.fn_exhausted", false},
	0x14: {"FN storage for OFD exhausted", "send documents to the OFD", "printer.ofd_backlog", false},
	0x16: {"FN: shift longer than 24 h", "run the Z report", "printer.shift_expired", false},
	0x17: {"FN: time between documents inconsistent", "check the printer clock", "printer.clock", false},
	0x20: {"FN: OFD message cannot be accepted", "", "printer.ofd", false},
	0x2F: {"FN exchange timeout", "retry; call service if it repeats", "printer.fn_timeout", true},
	0x30: {"FN not answering", "call service", "printer.fn_failure", false},
	0x33: {"wrong command parameters", "driver bug: report it", "printer.protocol", false},
	0x34: {"no data", "", "printer.no_data", false},
	0x35: {"parameter not allowed by current settings", "check device tables", "printer.settings", false},
	0x36: {"parameters not valid for this device", "check the model settings", "printer.settings", false},
	0x37: {"command not supported by this device", "feature not available on this model", "printer.unsupported", false},
	0x38: {"ROM error", "call service", "printer.hardware", false},
	0x39: {"internal firmware error", "call service", "printer.hardware", false},
	0x3C: {"shift open: operation impossible", "close the shift (Z report) first", "printer.shift_open", false},
	0x3D: {"shift not open: operation impossible", "open the shift", "printer.shift_closed", false},
	0x45: {"sum of payments less than receipt total", "fix the payments", "printer.payments", false},
	0x46: {"not enough cash in drawer", "", "printer.cash", false},
	0x48: {"receipt total overflow", "split the receipt", "printer.overflow", false},
	0x49: {"operation impossible in a receipt of this type", "", "printer.receipt_type", false},
	0x4A: {"receipt open: operation impossible", "close or cancel the receipt", "printer.receipt_open", false},
	0x4B: {"receipt buffer full", "close the receipt", "printer.receipt_full", false},
	0x4D: {"cashless sum larger than receipt total", "fix the payments", "printer.payments", false},
	0x4E: {"shift exceeded 24 h", "run the Z report", "printer.shift_expired", false},
	0x4F: {"wrong password", "check printer.password / admin_password in the configuration", "printer.password", false},
	0x50: {"still printing previous command", "wait and retry", "printer.busy", true},
	0x55: {"receipt closed: operation impossible", "no receipt is open: resynchronise state", "printer.receipt_closed", false},
	0x56: {"no document to repeat", "", "printer.no_data", false},
	0x58: {"waiting for continue-print command", "load paper, then continue printing", "printer.continue_print", true},
	0x59: {"document opened by another operator", "cancel the receipt", "printer.receipt_open", false},
	0x5E: {"invalid operation", "", "printer.protocol", false},
	0x5F: {"negative receipt total", "", "printer.payments", false},
	0x60: {"multiplication overflow", "validate the line", "printer.overflow", false},
	0x61: {"price overflow", "validate the line", "printer.overflow", false},
	0x62: {"quantity overflow", "validate the line", "printer.overflow", false},
	0x63: {"department overflow", "validate the line", "printer.overflow", false},
	0x6B: {"no receipt paper", "load paper", "printer.paper_out", true},
	0x6C: {"no journal paper", "load journal paper", "printer.paper_out", true},
	0x71: {"cutter error", "check the cutter", "printer.hardware", false},
	0x72: {"command not supported in this submode", "wait for printing to finish or continue print", "printer.busy", true},
	0x73: {"command not supported in this mode", "resynchronise the printer mode", "printer.state", false},
	0x74: {"RAM error", "call service", "printer.hardware", false},
	0x75: {"power failure", "check the power supply", "printer.power", false},
	0x77: {"printer error: no sensor signal", "check the print head", "printer.hardware", false},
	0x7E: {"wrong length field value", "driver bug: report it", "printer.protocol", false},
	0x8E: {"zero receipt total", "allow zero receipts in table 1 field 23", "printer.zero_receipt", false},
	0x90: {"print field overflow", "", "printer.protocol", false},
	0x94: {"operation limit in receipt exhausted", "split the receipt", "printer.receipt_full", false},
	0xA0: {"marked goods not enabled", "", "printer.marking", false},
	0xA4: {"required requisites missing in TLV", "", "printer.protocol", false},
	0xC0: {"confirm date/time", "confirm the printer clock", "printer.clock", false},
	0xC8: {"no printer link", "check the printing mechanism", "printer.hardware", false},
}

func (e *DeviceError) info() errInfo {
	if i, ok := errTable[e.Code]; ok {
		return i
	}
	return errInfo{text: "unknown device error", health: "printer.error"}
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("%s on %s: %s error %02Xh: %s", e.Op, e.Port, CmdName(e.Cmd), e.Code, e.info().text)
}

// Hint says what to do about the error.
func (e *DeviceError) Hint() string { return e.info().hint }

// Health is the stable health code for the UI, e.g. "printer.paper_out".
func (e *DeviceError) Health() string { return e.info().health }

// Transient reports whether retrying later (after waiting or loading paper) may succeed.
func (e *DeviceError) Transient() bool { return e.info().transient }

// Is lets errors.Is match by code: errors.Is(err, &DeviceError{Code: 0x6B}).
func (e *DeviceError) Is(target error) bool {
	t, ok := target.(*DeviceError)
	return ok && t.Code == e.Code && t.Cmd == 0 && t.Op == ""
}

// Error codes callers branch on.
var (
	ErrPaperOut     = &DeviceError{Code: 0x6B}
	ErrShiftExpired = &DeviceError{Code: 0x4E}
	ErrPassword     = &DeviceError{Code: 0x4F}
	ErrReceiptOpen  = &DeviceError{Code: 0x4A}
	ErrShiftClosed  = &DeviceError{Code: 0x3D}
	ErrNoDocument   = &DeviceError{Code: 0x08}
)

// CodeOf returns the device error code in err, if any.
func CodeOf(err error) (byte, bool) {
	var de *DeviceError
	if errors.As(err, &de) {
		return de.Code, true
	}
	return 0, false
}

// Link-layer failures. After ErrAnswerLost the command may have executed:
// the caller must resolve (fiscal.Printer.Resolve), never resend.
var (
	ErrNoLink     = errors.New("printer does not answer ENQ")
	ErrAnswerLost = errors.New("command accepted but its answer was lost")
	ErrTooManyNAK = errors.New("printer rejected the frame too many times")
	ErrBadAnswer  = errors.New("malformed answer")
	ErrPortClosed = errors.New("port closed or failed")
)

// StateError is a device state that stops an operation before any command
// (cover open, paper out in status, shift over 24 h seen in 10h).
type StateError struct {
	Op, Port string
	Health   string
	Msg      string
}

func (e *StateError) Error() string { return fmt.Sprintf("%s on %s: %s", e.Op, e.Port, e.Msg) }
