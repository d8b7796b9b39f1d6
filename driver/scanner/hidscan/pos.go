package hidscan

import (
	"bytes"
	"errors"
	"time"

	"tillagent/driver/scanner"
)

// Layout names a vendor HID POS report format, the fallback when the report
// descriptor cannot be read (see ReportFormat).
type Layout int

const (
	// LayoutAuto: chosen by vendor id (LayoutFor); Honeywell when unknown.
	LayoutAuto Layout = iota
	LayoutHoneywell
	LayoutNewland
)

// LayoutFor picks the fallback layout by vendor.
func LayoutFor(vid uint16) Layout {
	if vid == 0x1EAB {
		return LayoutNewland
	}
	return LayoutHoneywell
}

// Format returns the layout's report format.
func (l Layout) Format() ReportFormat {
	if l == LayoutNewland {
		return NewlandFormat
	}
	return HoneywellFormat
}

// POSConfig sets how HID POS reports become scans.
type POSConfig struct {
	Layout Layout
	// Format, when set, overrides Layout: it comes from the device's report
	// descriptor (ParseReportDescriptor).
	Format *ReportFormat
	// Suffixes are stripped from the end of the data (a CR is often left in).
	// Default CR, LF.
	Suffixes []byte
	// Timeout discards an unfinished multi-report scan. Default 500 ms.
	Timeout time.Duration
}

var (
	ErrTruncated = errors.New("multi-report scan did not complete")
	ErrBadReport = errors.New("malformed HID POS report")
)

// POSDecoder reassembles HID POS scanned-data reports into scans.
type POSDecoder struct {
	cfg     POSConfig
	f       ReportFormat
	aim     []byte // of the scan in progress
	codeID  byte
	buf     []byte
	pending bool
	last    time.Time
	// Replies counts host-command replies (AIM "]Z…") swallowed.
	Replies int
}

func NewPOSDecoder(cfg POSConfig) *POSDecoder {
	if cfg.Suffixes == nil {
		cfg.Suffixes = []byte{'\r', '\n'}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	f := cfg.Layout.Format()
	if cfg.Format != nil && cfg.Format.valid() == nil {
		f = *cfg.Format
	}
	return &POSDecoder{cfg: cfg, f: f}
}

// Accepts reports whether r is this device's scanned-data report (as
// opposed to a boot-keyboard report from the same device).
func (d *POSDecoder) Accepts(r []byte) bool {
	return len(r) == d.f.Size && (!d.f.HasID || r[0] == d.f.ReportID)
}

// Feed decodes one report. Frames returned carry the data with the AIM
// identifier first (when there is one) so that it can be split like any
// transport's data; Frame.Err reports discarded input.
func (d *POSDecoder) Feed(r []byte, at time.Time) []scanner.Frame {
	out := d.Flush(at)
	f := d.f
	bad := func() []scanner.Frame {
		return append(out, scanner.Frame{Data: append([]byte(nil), r...), At: at, Err: ErrBadReport})
	}
	if !d.Accepts(r) {
		return bad()
	}
	data := r[f.DataOff : f.DataOff+f.DataLen]
	if f.CountOff >= 0 {
		n := int(r[f.CountOff])
		if n > f.DataLen {
			return bad()
		}
		data = data[:n]
	} else {
		data = bytes.TrimRight(data, "\x00")
	}
	var aim []byte
	if f.AIMOff >= 0 && r[f.AIMOff] == ']' {
		aim = r[f.AIMOff : f.AIMOff+3]
	}
	var codeID byte
	if f.CodeIDOff >= 0 {
		codeID = r[f.CodeIDOff]
	}
	more := r[f.ContOff]&f.ContMask != 0
	if d.pending && !bytes.Equal(aim, d.aim) {
		// A different AIM starts a new scan. A command reply ("]Z…") ends
		// the reply chunks ("]X0") that preceded it: not a scan either.
		if !scanner.IsReply(string(aim)) {
			out = append(out, scanner.Frame{Data: d.frameData(), At: d.last, Err: ErrTruncated})
		}
		d.reset()
	}
	if !d.pending {
		d.aim, d.codeID = append([]byte(nil), aim...), codeID
	}
	d.pending = true
	d.buf = append(d.buf, data...)
	d.last = at
	if more {
		return out
	}
	if scanner.IsReply(string(d.aim)) {
		d.Replies++
		d.reset()
		return out
	}
	fr := scanner.Frame{Data: d.frameData(), At: at, CodeID: d.codeID}
	d.reset()
	return append(out, fr)
}

// frameData is the AIM (taken from the first report) followed by the data,
// without a trailing suffix.
func (d *POSDecoder) frameData() []byte {
	b := append(append([]byte(nil), d.aim...), d.buf...)
	for len(b) > len(d.aim) && bytes.IndexByte(d.cfg.Suffixes, b[len(b)-1]) >= 0 {
		b = b[:len(b)-1]
	}
	return b
}

func (d *POSDecoder) reset() {
	d.aim, d.buf, d.pending = nil, nil, false
}

// Flush discards a multi-report scan that stopped arriving.
func (d *POSDecoder) Flush(now time.Time) []scanner.Frame {
	if d.pending && now.Sub(d.last) >= d.cfg.Timeout {
		f := scanner.Frame{Data: d.frameData(), At: d.last, Err: ErrTruncated}
		d.reset()
		return []scanner.Frame{f}
	}
	return nil
}
