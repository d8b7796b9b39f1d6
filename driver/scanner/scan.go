package scanner

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Transport names how a scan reached the agent.
type Transport string

const (
	TransportHIDKeyboard Transport = "hid-keyboard"
	TransportHIDPOS      Transport = "hid-pos"
	TransportSerial      Transport = "serial"
)

// Flags mark scans the UI should treat with care; the data is still delivered.
type Flags uint8

const (
	// FlagSuspect: a function key, Alt+letter or an unknown control sequence
	// arrived inside the scan (usually the scanner's function-key mapping).
	FlagSuspect Flags = 1 << iota
	// FlagDuplicate: the same label came from the same device within the
	// duplicate window (a presentation scanner re-reading a phone).
	FlagDuplicate
	// FlagGapEnded: no terminator was seen; the scan ended by silence.
	FlagGapEnded
)

func (f Flags) String() string {
	var s []string
	if f&FlagSuspect != 0 {
		s = append(s, "suspect")
	}
	if f&FlagDuplicate != 0 {
		s = append(s, "duplicate")
	}
	if f&FlagGapEnded != 0 {
		s = append(s, "gap-ended")
	}
	return strings.Join(s, ",")
}

// Scan is one barcode read.
type Scan struct {
	Device    string    // configured scanner name
	Transport Transport //
	Raw       []byte    // exact bytes received, AIM included, terminator removed; GS (0x1D) kept
	AIM       string    // "]E0", empty when the device sent none
	Symbology Symbology
	CodeID    byte      // vendor code id (Honeywell), 0 if none
	Flags     Flags     //
	At        time.Time // when the last byte arrived
}

// Label is the data without the AIM identifier.
func (s Scan) Label() []byte {
	if s.AIM != "" && bytes.HasPrefix(s.Raw, []byte(s.AIM)) {
		return s.Raw[len(s.AIM):]
	}
	return s.Raw
}

// GS1 reports whether the data is GS1 element strings: the AIM says so
// (FNC1 in first position) or a GS separator is present.
func (s Scan) GS1() bool {
	return s.Symbology.GS1() || bytes.IndexByte(s.Label(), 0x1D) >= 0
}

func (s Scan) String() string {
	return fmt.Sprintf("%s %s %s %q", s.Device, s.Transport, s.Symbology, Printable(s.Raw))
}

// Printable renders control characters visibly (<GS>, <CR>, <0x07>), so that
// a technician can see whether the GS of a marking code survived.
func Printable(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == 0x1D:
			sb.WriteString("<GS>")
		case c == 0x1E:
			sb.WriteString("<RS>")
		case c == 0x04:
			sb.WriteString("<EOT>")
		case c == '\r':
			sb.WriteString("<CR>")
		case c == '\n':
			sb.WriteString("<LF>")
		case c == '\t':
			sb.WriteString("<TAB>")
		case c < 0x20 || c == 0x7F:
			fmt.Fprintf(&sb, "<0x%02X>", c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// Frame is what a transport decoder produces: the bytes of one message, or a
// framing problem. Drivers turn good frames into Scans.
type Frame struct {
	Data   []byte
	Flags  Flags
	At     time.Time
	CodeID byte // vendor code id, when the transport carries one apart from the data
	// Err is set for a framing problem (overflow, unterminated, garbage,
	// truncated multi-report scan); Data then holds what was discarded.
	Err error
}

// ToScan turns a good frame into a Scan from device, splitting off the AIM
// identifier; CodeID fills in the symbology when no AIM was sent.
func (f Frame) ToScan(device string, t Transport) Scan {
	aim, sym := SplitAIM(f.Data)
	if aim == "" && f.CodeID != 0 {
		sym = HoneywellCodeID(f.CodeID)
	}
	return Scan{Device: device, Transport: t, Raw: f.Data, AIM: aim, Symbology: sym, CodeID: f.CodeID, Flags: f.Flags, At: f.At}
}
