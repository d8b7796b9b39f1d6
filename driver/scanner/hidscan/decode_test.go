package hidscan

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/scannertest"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type feeder interface {
	Feed([]byte, time.Time) []scanner.Frame
	Flush(time.Time) []scanner.Frame
}

// replay feeds a recording with 1 ms between reports (plus its pauses) and
// a final flush long after, returning every frame.
func replay(d feeder, rec scannertest.Recording) []scanner.Frame {
	now := t0
	var out []scanner.Frame
	for _, s := range rec.Steps {
		if s.Report == nil {
			now = now.Add(s.Wait)
			out = append(out, d.Flush(now)...)
			continue
		}
		now = now.Add(time.Millisecond)
		out = append(out, d.Feed(s.Report, now)...)
	}
	return append(out, d.Flush(now.Add(time.Hour))...)
}

func good(frames []scanner.Frame) []string {
	var s []string
	for _, f := range frames {
		if f.Err == nil {
			s = append(s, string(f.Data))
		}
	}
	return s
}

func load(t *testing.T, path string) scannertest.Recording {
	t.Helper()
	rec, err := scannertest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Want) == 0 {
		t.Fatalf("%s: no want lines", path)
	}
	return rec
}

func TestWedgeRecorded(t *testing.T) {
	files, _ := filepath.Glob("../../../testdata/scanner/wedge/*.hex")
	if len(files) < 8 {
		t.Fatalf("recordings missing: %v", files)
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			rec := load(t, p)
			got := good(replay(NewWedgeDecoder(WedgeConfig{}), rec))
			if !slices.Equal(got, rec.Want) {
				t.Errorf("%s\n got %q\nwant %q", rec.Title, got, rec.Want)
			}
		})
	}
}

func TestWedgeFlagsAndNoise(t *testing.T) {
	frames := replay(NewWedgeDecoder(WedgeConfig{}), load(t, "../../../testdata/scanner/wedge/noise_suspect.hex"))
	if len(frames) != 2 {
		t.Fatalf("want a rejected noise frame and a scan, got %+v", frames)
	}
	if !errors.Is(frames[0].Err, ErrTooShort) || string(frames[0].Data) != "12" {
		t.Errorf("noise: %+v", frames[0])
	}
	if frames[1].Flags&scanner.FlagSuspect == 0 {
		t.Errorf("down arrow inside the scan should mark it suspect: %+v", frames[1])
	}
	frames = replay(NewWedgeDecoder(WedgeConfig{}), load(t, "../../../testdata/scanner/wedge/gap_end.hex"))
	if frames[0].Flags&scanner.FlagGapEnded == 0 || frames[1].Flags&scanner.FlagGapEnded != 0 {
		t.Errorf("gap flags: %+v", frames)
	}
	if frames[0].At != t0.Add(12*time.Millisecond) {
		t.Errorf("a gap-ended scan is stamped with its last report: %v", frames[0].At)
	}
}

// Reports built by hand for cases the recordings do not cover.
func rpt(mod, key byte) []byte { return []byte{mod, 0, key, 0, 0, 0, 0, 0} }

var rel = make([]byte, 8)

func feedAll(d *WedgeDecoder, reports ...[]byte) []scanner.Frame {
	var out []scanner.Frame
	now := t0
	for _, r := range reports {
		now = now.Add(time.Millisecond)
		out = append(out, d.Feed(r, now)...)
	}
	return out
}

func TestWedgeAltHighCodes(t *testing.T) {
	alt := func(digits ...byte) [][]byte {
		var rs [][]byte
		for _, k := range digits {
			rs = append(rs, rpt(0x04, k), rpt(0x04, 0))
		}
		return append(rs, rel)
	}
	cases := []struct {
		name string
		keys []byte
		want string
	}{
		{"leading zero is Windows-1252", []byte{0x62, 0x5A, 0x5B, 0x5B}, "abcdé"}, // Alt 0233
		{"no leading zero is CP437", []byte{0x59, 0x5B, 0x62}, "abcdé"},           // Alt 130
		{"ascii", []byte{0x5E, 0x5D}, "abcdA"},                                    // Alt 65
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewWedgeDecoder(WedgeConfig{})
			rs := [][]byte{rpt(0, 0x04), rel, rpt(0, 0x05), rel, rpt(0, 0x06), rel, rpt(0, 0x07), rel}
			rs = append(rs, alt(tc.keys...)...)
			rs = append(rs, rpt(0, 0x28), rel)
			got := good(feedAll(d, rs...))
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got %q want %q", got, tc.want)
			}
		})
	}
}

func TestWedgeCtrlControls(t *testing.T) {
	d := NewWedgeDecoder(WedgeConfig{MinLen: 1})
	got := good(feedAll(d,
		rpt(0, 0x04), rel,
		rpt(0x10, 0x30), rel, // right Ctrl + ] = GS
		rpt(0x03, 0x23), rel, // Ctrl+Shift+6 = RS
		rpt(0x01, 0x07), rel, // Ctrl+d = EOT
		rpt(0x03, 0x07), rel, // Ctrl+Shift+D = EOT too
		rpt(0, 0x28), rel))
	if want := "a\x1d\x1e\x04\x04"; len(got) != 1 || got[0] != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestWedgeConfiguredTerminatorAndOverflow(t *testing.T) {
	d := NewWedgeDecoder(WedgeConfig{Terminators: []byte{'#'}, MaxLen: 4})
	frames := feedAll(d,
		rpt(0, 0x1E), rel, rpt(0, 0x1F), rel, rpt(0, 0x20), rel, rpt(0, 0x21), rel, rpt(0, 0x28), rel, rpt(0x02, 0x20), rel)
	if len(frames) != 1 || !errors.Is(frames[0].Err, ErrOverflow) || string(frames[0].Data) != "1234" {
		t.Fatalf("Enter is data here and the 5th byte overflows: %+v", frames)
	}
	frames = feedAll(d, rpt(0, 0x1E), rel, rpt(0, 0x1F), rel, rpt(0, 0x20), rel, rpt(0, 0x28), rel, rpt(0x02, 0x20), rel)
	if g := good(frames); len(g) != 1 || g[0] != "123\r" {
		t.Errorf("got %q", g)
	}
}

func TestPOSRecorded(t *testing.T) {
	files, _ := filepath.Glob("../../../testdata/scanner/pos/*.hex")
	if len(files) < 4 {
		t.Fatalf("recordings missing: %v", files)
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			rec := load(t, p)
			layout := LayoutHoneywell
			if filepath.Base(p) == "newland_ean13.hex" {
				layout = LayoutNewland
			}
			d := NewPOSDecoder(POSConfig{Layout: layout})
			frames := replay(d, rec)
			if got := good(frames); !slices.Equal(got, rec.Want) {
				t.Errorf("%s\n got %q\nwant %q", rec.Title, got, rec.Want)
			}
			for _, f := range frames {
				if f.Err != nil {
					t.Errorf("unexpected error frame %v", f.Err)
				}
			}
		})
	}
}

func TestPOSScanFields(t *testing.T) {
	rec := load(t, "../../../testdata/scanner/pos/h1_ean13.hex")
	fs := replay(NewPOSDecoder(POSConfig{}), rec)
	s := fs[0].ToScan("front", scanner.TransportHIDPOS)
	if s.AIM != "]E0" || string(s.Label()) != "4601234567893" || s.Symbology != scanner.SymEAN13 || s.CodeID != 'd' {
		t.Errorf("scan %+v", s)
	}
	d := NewPOSDecoder(POSConfig{})
	replay(d, load(t, "../../../testdata/scanner/pos/h3_command_reply.hex"))
	if d.Replies != 1 {
		t.Errorf("replies = %d", d.Replies)
	}
}

func TestPOSTruncated(t *testing.T) {
	rec := load(t, "../../../testdata/scanner/pos/h2_qr_two_reports.hex")
	first := rec.Reports()[0]
	d := NewPOSDecoder(POSConfig{})
	if fs := d.Feed(first, t0); len(fs) != 0 {
		t.Fatalf("first chunk completed a scan: %+v", fs)
	}
	fs := d.Flush(t0.Add(time.Second))
	if len(fs) != 1 || !errors.Is(fs[0].Err, ErrTruncated) {
		t.Fatalf("unfinished scan must time out: %+v", fs)
	}
	// A report with a different AIM starts a new scan; the old one is reported.
	h1 := load(t, "../../../testdata/scanner/pos/h1_ean13.hex").Reports()[0]
	d.Feed(first, t0)
	fs = d.Feed(h1, t0.Add(time.Millisecond))
	if len(fs) != 2 || !errors.Is(fs[0].Err, ErrTruncated) || string(fs[1].Data) != "]E04601234567893" {
		t.Errorf("aim change: %+v", fs)
	}
	if fs := d.Feed(make([]byte, 10), t0); len(fs) != 1 || !errors.Is(fs[0].Err, ErrBadReport) {
		t.Errorf("short report: %+v", fs)
	}
	long := slices.Clone(h1)
	long[1] = 57 // more than 56 data bytes
	if fs := d.Feed(long, t0); len(fs) != 1 || !errors.Is(fs[0].Err, ErrBadReport) {
		t.Errorf("short report: %+v", fs)
	}
}

func FuzzWedgeDecoder(f *testing.F) {
	files, _ := filepath.Glob("../../../testdata/scanner/wedge/*.hex")
	for _, p := range files {
		rec, err := scannertest.Load(p)
		if err != nil {
			f.Fatal(err)
		}
		var b []byte
		for _, r := range rec.Reports() {
			b = append(b, r...)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewWedgeDecoder(WedgeConfig{MaxLen: 64})
		var frames []scanner.Frame
		now := t0
		for len(stream) >= 8 {
			n := 8
			if stream[0]&0x80 != 0 && len(stream) >= 9 { // exercise report-id reports too
				n = 9
			}
			now = now.Add(time.Duration(stream[1]) * 3 * time.Millisecond)
			frames = append(frames, d.Feed(stream[:n], now)...)
			stream = stream[n:]
		}
		frames = append(frames, d.Flush(now.Add(time.Hour))...)
		for _, fr := range frames {
			if len(fr.Data) > 64 {
				t.Fatalf("frame over MaxLen: %d", len(fr.Data))
			}
			if fr.Err == nil {
				for _, c := range []byte{'\r', '\n', '\t'} {
					if slices.Contains(fr.Data, c) {
						t.Fatalf("terminator inside a scan: %q", fr.Data)
					}
				}
				if len(fr.Data) < 4 {
					t.Fatalf("short scan delivered: %q", fr.Data)
				}
			}
		}
	})
}

func FuzzPOSDecoder(f *testing.F) {
	files, _ := filepath.Glob("../../../testdata/scanner/pos/*.hex")
	for _, p := range files {
		rec, err := scannertest.Load(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range rec.Reports() {
			f.Add(r, false)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte, newland bool) {
		l := LayoutHoneywell
		if newland {
			l = LayoutNewland
		}
		d := NewPOSDecoder(POSConfig{Layout: l})
		now := t0
		total := 0
		for len(stream) > 0 {
			n := min(64, len(stream))
			now = now.Add(time.Millisecond)
			total += n
			for _, fr := range d.Feed(stream[:n], now) {
				if fr.Err == nil && len(fr.Data) > total+3 {
					t.Fatalf("scan longer than the data fed: %d > %d", len(fr.Data), total)
				}
			}
			stream = stream[n:]
		}
		d.Flush(now.Add(time.Hour))
	})
}
