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
	0x08: {"FN: no requested data", "the document or data asked for is not in the FN", "printer.no_data", false},
	0x09: {"FN: wrong parameter value", "driver bug: report it", "printer.protocol", false},
	0x10: {"FN: TLV data too large", "split the requisite", "printer.protocol", false},
	0x11: {"FN: no transport connection to OFD", "check the OFD connection", "printer.ofd", true},
	0x12: {"FN resource exhausted", "replace the FN", "printer.fn_exhausted", false},
	0x14: {"FN storage for OFD exhausted", "send documents to the OFD", "printer.ofd_backlog", false},
	0x16: {"FN: shift longer than 24 h", "run the Z report", "printer.shift_expired", false},
	0x17: {"FN: time between documents inconsistent", "check the printer clock", "printer.clock", false},
	0x20: {"FN: OFD message cannot be accepted", "check the OFD settings; the documents stay in the FN", "printer.ofd", false},
	0x2F: {"FN exchange timeout", "retry; call service if it repeats", "printer.fn_timeout", true},
	0x30: {"FN not answering", "call service", "printer.fn_failure", false},
	0x33: {"wrong command parameters", "driver bug: report it", "printer.protocol", false},
	0x34: {"no data", "the data asked for does not exist on the device", "printer.no_data", false},
	0x35: {"parameter not allowed by current settings", "check device tables", "printer.settings", false},
	0x36: {"parameters not valid for this device", "check the model settings", "printer.settings", false},
	0x37: {"command not supported by this device", "feature not available on this model", "printer.unsupported", false},
	0x38: {"ROM error", "call service", "printer.hardware", false},
	0x39: {"internal firmware error", "call service", "printer.hardware", false},
	0x3C: {"shift open: operation impossible", "close the shift (Z report) first", "printer.shift_open", false},
	0x3D: {"shift not open: operation impossible", "open the shift", "printer.shift_closed", false},
	0x45: {"sum of payments less than receipt total", "fix the payments", "printer.payments", false},
	0x46: {"not enough cash in drawer", "count the drawer; pay out less", "printer.cash", false},
	0x48: {"receipt total overflow", "split the receipt", "printer.overflow", false},
	0x49: {"operation impossible in a receipt of this type", "the line's operation does not match the receipt (sale vs return)", "printer.receipt_type", false},
	0x4A: {"receipt open: operation impossible", "close or cancel the receipt", "printer.receipt_open", false},
	0x4B: {"receipt buffer full", "close the receipt", "printer.receipt_full", false},
	0x4D: {"cashless sum larger than receipt total", "fix the payments", "printer.payments", false},
	0x4E: {"shift exceeded 24 h", "run the Z report", "printer.shift_expired", false},
	0x4F: {"wrong password", "check printer.password / admin_password in the configuration", "printer.password", false},
	0x50: {"still printing previous command", "wait and retry", "printer.busy", true},
	0x55: {"receipt closed: operation impossible", "no receipt is open: resynchronise state", "printer.receipt_closed", false},
	0x56: {"no document to repeat", "no receipt was printed since the last shift report", "printer.no_data", false},
	0x58: {"waiting for continue-print command", "load paper, then continue printing", "printer.continue_print", true},
	0x59: {"document opened by another operator", "cancel the receipt", "printer.receipt_open", false},
	0x5E: {"invalid operation", "driver bug: report it", "printer.protocol", false},
	0x5F: {"negative receipt total", "fix the receipt lines", "printer.payments", false},
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
	0x90: {"print field overflow", "shorten the printed line", "printer.protocol", false},
	0x91: {"print field outside the printable area", "shorten the printed line", "printer.protocol", false},
	0x92: {"print fields overlap", "driver bug: report it", "printer.protocol", false},
	0x94: {"operation limit in receipt exhausted", "split the receipt", "printer.receipt_full", false},
	0xA0: {"marked goods not enabled", "enable marking in the FN registration or sell without a code", "printer.marking", false},
	0xA1: {"wrong marking command sequence", "driver bug: report it", "printer.marking", false},
	0xA2: {"marking temporarily blocked: notification storage full", "let the printer send notifications to the OFD", "printer.marking", true},
	0xA3: {"marking check table full (128 codes)", "close the receipt first", "printer.marking", false},
	0xA4: {"required requisites missing in TLV", "driver bug: report it", "printer.protocol", false},
	0xA5: {"tag 2007 has a code not checked before", "check the marking code first", "printer.marking", false},
	0xC0: {"confirm date/time", "confirm the printer clock", "printer.clock", false},
	0xC4: {"shift numbers mismatch between device and FN", "call service", "printer.fn_failure", false},
	0xC8: {"no printer link", "check the printing mechanism", "printer.hardware", false},
}

func (e *DeviceError) info() errInfo {
	if i, ok := errTable[e.Code]; ok {
		return i
	}
	return errInfo{text: "unknown device error", hint: "look the code up in the printer's protocol manual", health: "printer.error"}
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
// and has no protocol error code of its own (cover open).
type StateError struct {
	Op, Port string
	Health   string // stable, e.g. "printer.cover_open"
	Msg      string
}

func (e *StateError) Error() string { return fmt.Sprintf("%s on %s: %s", e.Op, e.Port, e.Msg) }

var stateHints = map[string]string{
	"printer.cover_open": "close the printer cover, then print again",
}

// Hint says what to do about the state.
func (e *StateError) Hint() string { return stateHints[e.Health] }

// Is matches by health code: errors.Is(err, shtrih.ErrCoverOpen).
func (e *StateError) Is(target error) bool {
	t, ok := target.(*StateError)
	return ok && t.Health == e.Health && t.Op == ""
}

// ErrCoverOpen matches the cover-open StateError.
var ErrCoverOpen = &StateError{Health: "printer.cover_open"}

// linkInfo gives the link-layer failures a health code and a hint too.
var linkInfo = []struct {
	err          error
	health, hint string
}{
	{ErrAnswerLost, "printer.answer_lost", "the printer stopped answering after it was sent a command, which may have run: for a receipt, resolve it (Resolve) before printing it again; check power and cable"},
	{ErrNoLink, "printer.no_link", "check the printer's power, cable, port name and baud rate"},
	{ErrTooManyNAK, "printer.line_noise", "check the cable and the baud rate"},
	{ErrBadAnswer, "printer.protocol", "the device is not a Shtrih-M printer or speaks another protocol version"},
	{ErrPortClosed, "printer.port", "the serial port was closed or unplugged: reconnect it"},
}

// Explain returns the stable health code and the hint for any error the
// driver returns: a device error code, a state, or a link failure. ok is
// false for errors the driver does not know (context, receipt validation).
func Explain(err error) (health, hint string, ok bool) {
	var de *DeviceError
	var se *StateError
	switch {
	case errors.As(err, &de):
		return de.Health(), de.Hint(), true
	case errors.As(err, &se):
		return se.Health, se.Hint(), true
	}
	for _, l := range linkInfo {
		if errors.Is(err, l.err) {
			return l.health, l.hint, true
		}
	}
	return "", "", false
}
