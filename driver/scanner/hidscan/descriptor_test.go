package hidscan

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func readDesc(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../../testdata/scanner/descriptors", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHoneywellDescriptor(t *testing.T) {
	f, err := ParseReportDescriptor(readDesc(t, "honeywell_pos.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := HoneywellFormat
	want.CodeIDOff = -1 // vendor usage, not described
	if f != want {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
	if _, err := ParseReportDescriptor(readDesc(t, "boot_keyboard.bin")); err == nil {
		t.Error("a keyboard descriptor parsed as HID POS")
	}
	if _, err := ParseReportDescriptor(readDesc(t, "honeywell_pos.bin")[:20]); err == nil {
		t.Error("truncated descriptor accepted")
	}
}

// A scanner with another layout: no report ID, continued bit first, no byte
// count (data NUL padded), AIM after the data. The parsed format decodes it.
func TestDescriptorDrivenDecoding(t *testing.T) {
	desc := []byte{
		0x06, 0x8C, 0x00, 0x09, 0x02, 0xA1, 0x01,
		0x75, 0x01, 0x95, 0x01, 0x25, 0x01, 0x09, 0xFF, 0x81, 0x02, // continued, bit 0 of byte 0
		0x95, 0x07, 0x81, 0x03, // padding
		0x75, 0x08, 0x26, 0xFF, 0x00, 0x95, 0x20, 0x09, 0xFE, 0x82, 0x02, 0x01, // 32 data bytes
		0x19, 0xFB, 0x29, 0xFD, 0x95, 0x03, 0x81, 0x02, // symbology id 1..3 via usage min/max
		0xC0,
	}
	f, err := ParseReportDescriptor(desc)
	if err != nil {
		t.Fatal(err)
	}
	want := ReportFormat{ReportID: 0, Size: 36, CountOff: -1, AIMOff: 33, DataOff: 1, DataLen: 32, CodeIDOff: -1, ContOff: 0, ContMask: 1}
	if f != want {
		t.Fatalf("got  %+v\nwant %+v", f, want)
	}
	d := NewPOSDecoder(POSConfig{Format: &f})
	r1 := make([]byte, 36)
	r1[0] = 1
	copy(r1[1:], "0104601234567893215ABC\x1d93XY1abc")
	copy(r1[33:], "]d2")
	r2 := make([]byte, 36)
	copy(r2[1:], "def\r")
	copy(r2[33:], "]d2")
	if fs := d.Feed(r1, t0); len(fs) != 0 {
		t.Fatalf("first chunk: %+v", fs)
	}
	fs := d.Feed(r2, t0)
	if len(fs) != 1 || fs[0].Err != nil || string(fs[0].Data) != "]d20104601234567893215ABC\x1d93XY1abcdef" {
		t.Errorf("%+v", fs)
	}
	if d.Accepts(make([]byte, 64)) {
		t.Error("accepted a report of the wrong size")
	}
}

func TestProbeCachesDescriptorFormat(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "bus/usb/devices/3-2:1.1/0003:0C2E:0B61.0007")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report_descriptor"), readDesc(t, "honeywell_pos.bin"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := New(Config{Interface: -1, SysfsRoot: root})
	i, k, ok := d.pick([]Info{{Path: "3-2:1.0"}, {Path: "3-2:1.1", Interface: 1}})
	if !ok || k != KindPOS || i.Interface != 1 {
		t.Fatalf("picked %+v %v", i, k)
	}
	if f, ok := d.formats["3-2:1.1"]; !ok || f.DataOff != 5 {
		t.Errorf("format not cached: %+v", f)
	}
}

func FuzzReportDescriptor(f *testing.F) {
	f.Add(readDesc(f, "honeywell_pos.bin"))
	f.Add(readDesc(f, "boot_keyboard.bin"))
	f.Fuzz(func(t *testing.T, desc []byte) {
		rf, err := ParseReportDescriptor(desc)
		if err != nil {
			return
		}
		if err := rf.valid(); err != nil {
			t.Fatalf("parser returned an invalid format: %v", err)
		}
		// Any accepted format must decode any report of its size safely.
		d := NewPOSDecoder(POSConfig{Format: &rf})
		r := make([]byte, rf.Size)
		for i := range r {
			r[i] = byte(i * 7)
		}
		r[0] = rf.ReportID
		for _, fr := range d.Feed(r, t0) {
			if fr.Err != nil && !errors.Is(fr.Err, ErrBadReport) {
				t.Fatalf("unexpected error %v", fr.Err)
			}
		}
	})
}
