package hidscan

import (
	"errors"
	"fmt"
)

// ReportFormat locates the fields of a HID POS scanned-data input report.
// Offsets are in bytes from the start of the report as read (report ID
// included); -1 means the report has no such field.
type ReportFormat struct {
	HasID     bool // reports start with ReportID
	ReportID  byte
	Size      int // bytes, report ID included
	CountOff  int // Byte Count (page 0x01 usage 0x3B); -1: data is NUL padded
	AIMOff    int // Symbology Identifier 1–3 (0x8C 0xFB–0xFD); -1: AIM, if any, is inside the data
	DataOff   int // Decoded Data (0x8C 0xFE)
	DataLen   int
	CodeIDOff int  // vendor code id byte; -1: none
	ContOff   int  // Decode Data Continued (0x8C 0xFF)
	ContMask  byte // its bit
}

// Vendor formats, used when the report descriptor cannot be read or parsed.
var (
	// HoneywellFormat: [1] length, [2:5] AIM, [5:61] data, [61] code id, [63] bit 0 continued.
	HoneywellFormat = ReportFormat{HasID: true, ReportID: 2, Size: 64, CountOff: 1, AIMOff: 2, DataOff: 5, DataLen: 56, CodeIDOff: 61, ContOff: 63, ContMask: 1}
	// NewlandFormat (ID TECH, VID 0x1EAB): [1] length, [2:58] data, [62] symbology id, [63] bit 0 continued.
	NewlandFormat = ReportFormat{HasID: true, ReportID: 2, Size: 64, CountOff: 1, AIMOff: -1, DataOff: 2, DataLen: 56, CodeIDOff: 62, ContOff: 63, ContMask: 1}
)

func (f ReportFormat) valid() error {
	in := func(off, n int) bool { return off >= 0 && off+n <= f.Size }
	switch {
	case f.Size < 2 || f.Size > 4096:
		return fmt.Errorf("report size %d", f.Size)
	case !in(f.DataOff, f.DataLen) || f.DataLen == 0:
		return errors.New("decoded data outside the report")
	case f.CountOff >= 0 && !in(f.CountOff, 1):
		return errors.New("byte count outside the report")
	case f.AIMOff >= 0 && !in(f.AIMOff, 3):
		return errors.New("symbology identifier outside the report")
	case f.CodeIDOff >= 0 && !in(f.CodeIDOff, 1):
		return errors.New("code id outside the report")
	case !in(f.ContOff, 1) || f.ContMask == 0:
		return errors.New("no decode-data-continued bit")
	}
	return nil
}

const (
	pageGenericDesktop = 0x01
	pagePOS            = 0x8C
	usageByteCount     = 0x3B
	usageSymID1        = 0xFB
	usageDecodedData   = 0xFE
	usageDataContinued = 0xFF
)

// field is where one usage sits in an input report, in bits after the report ID.
type field struct {
	id       byte
	bit, len int
}

// ParseReportDescriptor finds the HID POS scanned-data report in a HID report
// descriptor (as read from sysfs): the input report that carries Decoded
// Data, with its byte count, symbology identifier and continued bit. Only
// byte-aligned fields are accepted for data; the vendor code id is not
// described by descriptors and is left at -1.
func ParseReportDescriptor(desc []byte) (ReportFormat, error) {
	type global struct {
		page        uint32
		size, count int
		id          byte
	}
	var (
		g       global
		stack   []global
		usages  []uint32 // full 32-bit usages (page<<16 | id)
		umin    uint32
		haveMin bool
		bitpos  = map[byte]int{}
		hasIDs  bool
		found   = map[uint32]field{}
	)
	full := func(u uint32, size int) uint32 {
		if size == 4 {
			return u
		}
		return g.page<<16 | u
	}
	for i := 0; i < len(desc); {
		b := desc[i]
		if b == 0xFE { // long item: skip
			if i+1 >= len(desc) {
				break
			}
			i += 3 + int(desc[i+1])
			continue
		}
		size := [4]int{0, 1, 2, 4}[b&3]
		if i+1+size > len(desc) {
			return ReportFormat{}, errors.New("truncated report descriptor")
		}
		var v uint32
		for k := 0; k < size; k++ {
			v |= uint32(desc[i+1+k]) << (8 * k)
		}
		typ, tag := (b>>2)&3, b>>4
		i += 1 + size
		switch typ {
		case 1: // global
			switch tag {
			case 0:
				g.page = v
			case 7:
				g.size = int(v)
			case 8:
				g.id, hasIDs = byte(v), true
			case 9:
				g.count = int(v)
			case 10:
				stack = append(stack, g)
			case 11:
				if len(stack) > 0 {
					g, stack = stack[len(stack)-1], stack[:len(stack)-1]
				}
			}
		case 2: // local
			switch tag {
			case 0:
				usages = append(usages, full(v, size))
			case 1:
				umin, haveMin = full(v, size), true
			case 2:
				if haveMin && full(v, size) >= umin && full(v, size)-umin < 1024 {
					for u := umin; u <= full(v, size); u++ {
						usages = append(usages, u)
					}
				}
			}
		case 0: // main
			if tag == 8 { // Input
				bits := g.size * g.count
				if bits < 0 || bits > 1<<16 {
					return ReportFormat{}, errors.New("implausible field size")
				}
				start := bitpos[g.id]
				if v&1 == 0 { // data, not constant padding
					for k, u := range usages {
						if _, dup := found[u]; dup {
							continue
						}
						if len(usages) == 1 || g.count == 1 {
							found[u] = field{g.id, start, bits}
						} else if k < g.count {
							found[u] = field{g.id, start + k*g.size, g.size}
						}
					}
				}
				bitpos[g.id] = start + bits
			}
			if tag == 8 || tag == 9 || tag == 11 || tag == 10 || tag == 12 {
				usages, haveMin = usages[:0], false
			}
		}
	}
	data, ok := found[pagePOS<<16|usageDecodedData]
	if !ok {
		return ReportFormat{}, errors.New("no HID POS Decoded Data input in the descriptor")
	}
	if data.bit%8 != 0 || data.len%8 != 0 {
		return ReportFormat{}, errors.New("decoded data not byte aligned")
	}
	idBytes := 0
	if hasIDs {
		idBytes = 1
	}
	f := ReportFormat{HasID: hasIDs, ReportID: data.id, Size: idBytes + (bitpos[data.id]+7)/8, CountOff: -1, AIMOff: -1, CodeIDOff: -1,
		DataOff: idBytes + data.bit/8, DataLen: data.len / 8}
	same := func(u uint32) (int, bool) {
		x, ok := found[u]
		if !ok || x.id != data.id {
			return 0, false
		}
		return x.bit, true
	}
	if b, ok := same(pageGenericDesktop<<16 | usageByteCount); ok && b%8 == 0 {
		f.CountOff = idBytes + b/8
	}
	if b, ok := same(pagePOS<<16 | usageSymID1); ok && b%8 == 0 {
		f.AIMOff = idBytes + b/8
	}
	if b, ok := same(pagePOS<<16 | usageDataContinued); ok {
		f.ContOff, f.ContMask = idBytes+b/8, 1<<(b%8)
	}
	if err := f.valid(); err != nil {
		return ReportFormat{}, fmt.Errorf("HID POS report %d: %w", f.ReportID, err)
	}
	return f, nil
}
