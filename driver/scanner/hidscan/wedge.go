package hidscan

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"tillagent/driver/scanner"
)

// WedgeConfig sets how keyboard-wedge reports become scans.
type WedgeConfig struct {
	// Terminators end a scan. Default CR, LF and Tab. GS (0x1D) is never a
	// terminator: it separates GS1 element strings.
	Terminators []byte
	// Gap ends a scan when no report arrives for this long. Default 300 ms:
	// above the slowest measured inter-key gap (Zebra, ~100 ms peaks).
	Gap time.Duration
	// MinLen rejects shorter scans as noise (stray keys). Default 4.
	MinLen int
	// MaxLen caps a scan; the rest is discarded with an error. Default 8 KiB.
	MaxLen int
}

func (c *WedgeConfig) defaults() {
	if c.Terminators == nil {
		c.Terminators = []byte{'\r', '\n', '\t'}
	}
	if c.Gap <= 0 {
		c.Gap = 300 * time.Millisecond
	}
	if c.MinLen <= 0 {
		c.MinLen = 4
	}
	if c.MaxLen <= 0 {
		c.MaxLen = 8 << 10
	}
}

// Errors carried by Frame.Err from the wedge decoder.
var (
	ErrTooShort = errors.New("scan shorter than the minimum length, dropped as noise")
	ErrOverflow = errors.New("scan longer than the maximum length, discarded")
)

const (
	modCtrl  = 0x11
	modShift = 0x22
	modAlt   = 0x44
)

// WedgeDecoder turns HID boot-keyboard reports into scans using the fixed US
// usage table, so the desktop's keyboard layout never touches the data. It
// is not safe for concurrent use; one goroutine owns each device.
type WedgeDecoder struct {
	cfg      WedgeConfig
	prevKeys [6]byte
	prevMods byte
	latched  byte // modifiers from a modifier-only report, applied to the next press
	caps     bool
	altNum   []byte // keypad digits typed while Alt is held
	buf      []byte
	flags    scanner.Flags
	over     bool
	last     time.Time
	// Malformed counts reports of an unexpected length (ignored).
	Malformed int
}

func NewWedgeDecoder(cfg WedgeConfig) *WedgeDecoder {
	cfg.defaults()
	return &WedgeDecoder{cfg: cfg}
}

// Feed decodes one input report received at at and returns the scans (and
// rejected frames) it completed. A report of 9 bytes carries a report ID
// first; other lengths than 8 or 9 are ignored.
func (d *WedgeDecoder) Feed(report []byte, at time.Time) []scanner.Frame {
	var out []scanner.Frame
	if len(d.buf) > 0 || d.over {
		if at.Sub(d.last) >= d.cfg.Gap {
			out = d.end(out, scanner.FlagGapEnded)
		}
	}
	switch len(report) {
	case 8:
	case 9:
		report = report[1:]
	default:
		d.Malformed++
		return out
	}
	d.last = at
	mods := report[0]
	keys := report[2:8]
	for _, k := range keys {
		if k >= 0x01 && k <= 0x03 { // roll-over / POST fail / undefined: key slots are meaningless
			return out
		}
	}
	// Alt released: the accumulated keypad number becomes one character.
	if d.prevMods&modAlt != 0 && mods&modAlt == 0 {
		out = d.finishAlt(out)
	}
	anyKey := false
	for _, k := range keys {
		if k != 0 {
			anyKey = true
		}
	}
	eff := mods
	switch {
	case !anyKey && mods&^d.prevMods != 0:
		// A modifier newly pressed on its own: some scanners send it one
		// report ahead of the key, which may then come without it.
		d.latched = mods
	case !anyKey && mods == 0:
		d.latched = 0
	case mods == 0:
		eff = d.latched
	}
	for _, k := range keys {
		if k == 0 || contains(d.prevKeys[:], k) {
			continue
		}
		out = d.press(out, k, eff)
		d.latched = 0
	}
	copy(d.prevKeys[:], keys)
	d.prevMods = mods
	return out
}

// Flush ends a scan in progress when the gap has passed by now; drivers
// call it whenever a read times out.
func (d *WedgeDecoder) Flush(now time.Time) []scanner.Frame {
	if (len(d.buf) > 0 || d.over) && now.Sub(d.last) >= d.cfg.Gap {
		return d.end(nil, scanner.FlagGapEnded)
	}
	return nil
}

func contains(s []byte, b byte) bool {
	for _, c := range s {
		if c == b {
			return true
		}
	}
	return false
}

func isKeypadDigit(k byte) bool { return k >= 0x59 && k <= 0x62 }

func keypadDigit(k byte) byte {
	if k == 0x62 {
		return '0'
	}
	return '1' + (k - 0x59)
}

func (d *WedgeDecoder) press(out []scanner.Frame, k, mods byte) []scanner.Frame {
	if k == 0x53 { // Num Lock: some scanners wrap Alt sequences in it
		return out
	}
	if mods&modAlt != 0 {
		if isKeypadDigit(k) {
			d.altNum = append(d.altNum, keypadDigit(k))
			return out
		}
		// A non-keypad key ends the Alt sequence and is decoded normally;
		// Alt+letter itself is no data, so mark the scan.
		out = d.finishAlt(out)
		d.flags |= scanner.FlagSuspect
	}
	if k == 0x39 {
		d.caps = !d.caps
		return out
	}
	shift := mods&modShift != 0
	if mods&modCtrl != 0 {
		c, ok := ctrlChar(k, shift)
		if !ok {
			d.flags |= scanner.FlagSuspect
			return out
		}
		return d.char(out, c)
	}
	c, ok := usChar(k, shift, d.caps)
	if !ok {
		// Function keys, arrows and the like carry no data; when one shows
		// up inside a scan the scanner maps control characters to keys.
		d.flags |= scanner.FlagSuspect
		return out
	}
	return d.char(out, c)
}

func (d *WedgeDecoder) finishAlt(out []scanner.Frame) []scanner.Frame {
	if len(d.altNum) == 0 {
		return out
	}
	digits := d.altNum
	d.altNum = nil
	n, err := strconv.Atoi(string(digits))
	if err != nil || n > 255 {
		d.flags |= scanner.FlagSuspect
		return out
	}
	if n < 128 {
		return d.char(out, byte(n))
	}
	// 128–255: a leading 0 selects Windows-1252, none the OEM code page
	// (CP437), as Windows does. Delivered as UTF-8.
	var r rune
	if digits[0] == '0' {
		r = charmap.Windows1252.DecodeByte(byte(n))
	} else {
		r = charmap.CodePage437.DecodeByte(byte(n))
	}
	for _, b := range utf8.AppendRune(nil, r) {
		out = d.char(out, b)
	}
	return out
}

func (d *WedgeDecoder) char(out []scanner.Frame, c byte) []scanner.Frame {
	if contains(d.cfg.Terminators, c) {
		// An empty scan between terminators (the LF of CR LF, a double
		// Enter) is no scan.
		if len(d.buf) == 0 && !d.over {
			return out
		}
		return d.end(out, 0)
	}
	if len(d.buf) >= d.cfg.MaxLen {
		d.over = true
		return out
	}
	d.buf = append(d.buf, c)
	return out
}

func (d *WedgeDecoder) end(out []scanner.Frame, flag scanner.Flags) []scanner.Frame {
	f := scanner.Frame{Data: d.buf, Flags: d.flags | flag, At: d.last}
	switch {
	case d.over:
		f.Err = fmt.Errorf("%w (%d bytes)", ErrOverflow, d.cfg.MaxLen)
	case len(d.buf) < d.cfg.MinLen:
		f.Err = ErrTooShort
	}
	out = append(out, f)
	d.buf, d.flags, d.over = nil, 0, false
	return out
}

// usChar is the US-layout usage table (HID usage page 0x07).
func usChar(k byte, shift, caps bool) (byte, bool) {
	switch {
	case k >= 0x04 && k <= 0x1D:
		c := 'a' + (k - 0x04)
		if shift != caps { // Caps Lock inverts the case of letters only
			c -= 'a' - 'A'
		}
		return c, true
	case k >= 0x1E && k <= 0x27:
		if shift {
			return "!@#$%^&*()"[k-0x1E], true
		}
		if k == 0x27 {
			return '0', true
		}
		return '1' + (k - 0x1E), true
	case k >= 0x2D && k <= 0x38:
		plain, shifted := "-=[]\\#;'`,./", "_+{}|~:\"~<>?"
		if shift {
			return shifted[k-0x2D], true
		}
		return plain[k-0x2D], true
	case k == 0x64:
		if shift {
			return '|', true
		}
		return '\\', true
	case isKeypadDigit(k): // regardless of Num Lock
		return keypadDigit(k), true
	}
	switch k {
	case 0x28, 0x58:
		return '\r', true
	case 0x29:
		return 0x1B, true
	case 0x2A:
		return 0x08, true
	case 0x2B:
		return '\t', true
	case 0x2C:
		return ' ', true
	case 0x54:
		return '/', true
	case 0x55:
		return '*', true
	case 0x56:
		return '-', true
	case 0x57:
		return '+', true
	case 0x63:
		return '.', true
	case 0x67:
		return '=', true
	}
	return 0, false
}

// ctrlChar maps Ctrl+key to a control character (ASCII value minus 0x40).
// Ctrl with and without Shift are both accepted for letters.
func ctrlChar(k byte, shift bool) (byte, bool) {
	switch {
	case k >= 0x04 && k <= 0x1D:
		return 0x01 + (k - 0x04), true
	case k == 0x2F:
		return 0x1B, true
	case k == 0x31:
		return 0x1C, true
	case k == 0x30:
		return 0x1D, true // GS: FNC1 of GS1 codes
	case k == 0x1F && shift:
		return 0x00, true
	case k == 0x23 && shift:
		return 0x1E, true
	case k == 0x2D && shift:
		return 0x1F, true
	}
	return 0, false
}
