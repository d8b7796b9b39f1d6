package serialscan

import (
	"errors"
	"slices"
	"testing"
	"time"

	"tillagent/driver/scanner"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const s1 = "]E04601234567893"

type chunk struct {
	data  string
	after time.Duration // since the previous chunk
}

func run(f *Framer, chunks ...chunk) []scanner.Frame {
	now := t0
	var out []scanner.Frame
	for _, c := range chunks {
		now = now.Add(c.after)
		out = append(out, f.Feed([]byte(c.data), now)...)
	}
	return append(out, f.Flush(now.Add(time.Hour))...)
}

func split(fs []scanner.Frame) (good []string, errs []error) {
	for _, f := range fs {
		if f.Err != nil {
			errs = append(errs, f.Err)
		} else {
			good = append(good, string(f.Data))
		}
	}
	return
}

func TestFramer(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name    string
		framing Framing
		chunks  []chunk
		want    []string
		errs    []error
	}{
		{"S1 crlf", FramingCRLF, []chunk{{s1 + "\r\n", 0}}, []string{s1}, nil},
		{"crlf split inside the terminator", FramingCRLF, []chunk{{s1 + "\r", 0}, {"\n" + s1 + "\r\n", ms}}, []string{s1, s1}, nil},
		{"crlf keeps a lone CR as data", FramingCRLF, []chunk{{"ab\rcd\r\n", 0}}, []string{"ab\rcd"}, nil},
		{"cr", FramingCR, []chunk{{"1234\r5678\r", 0}}, []string{"1234", "5678"}, nil},
		{"cr with CR LF from the scanner is one scan each", FramingCR, []chunk{{"1234\r\n5678\r\n", 0}}, []string{"1234", "5678"}, nil},
		{"cr keeps LF inside a 2D code", FramingCR, []chunk{{"line1\nline2\r", 0}}, []string{"line1\nline2"}, nil},
		{"lf", FramingLF, []chunk{{"\r\n1234\n", 0}}, []string{"1234"}, nil},
		{"leading stray terminators dropped", FramingCR, []chunk{{"\r\r\n1234\r", 0}}, []string{"1234"}, nil},
		{"S2 gap, split across reads 5 ms apart", FramingGap, []chunk{{s1[:7], 0}, {s1[7:], 5 * ms}}, []string{s1}, nil},
		{"gap separates two scans", FramingGap, []chunk{{"1111", 0}, {"2222", time.Second}}, []string{"1111", "2222"}, nil},
		{"S3 stx etx", FramingSTXETX, []chunk{{"\x02" + s1 + "\x03", 0}}, []string{s1}, nil},
		{"stx etx with CR LF suffix and partial reads", FramingSTXETX, []chunk{{"\x02ab", 0}, {"cd\x03\r", ms}, {"\n\x02efgh\x03", ms}}, []string{"abcd", "efgh"}, nil},
		{"garbage outside stx etx", FramingSTXETX, []chunk{{"zz\x02abcd\x03", 0}}, []string{"abcd"}, []error{ErrGarbage}},
		{"stx inside a message", FramingSTXETX, []chunk{{"\x02ab\x02cdef\x03", 0}}, []string{"cdef"}, []error{ErrUnterminated}},
		{"unterminated discarded after silence", FramingCR, []chunk{{"12345", 0}, {"6789\r", time.Second}}, []string{"6789"}, []error{ErrUnterminated}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFramer(FramerConfig{Framing: tc.framing, Gap: 50 * ms})
			good, errs := split(run(f, tc.chunks...))
			if !slices.Equal(good, tc.want) {
				t.Errorf("scans %q want %q", good, tc.want)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors %v want %v", errs, tc.errs)
			}
			for i := range errs {
				if !errors.Is(errs[i], tc.errs[i]) {
					t.Errorf("error %v want %v", errs[i], tc.errs[i])
				}
			}
		})
	}
}

func TestFramerOverflowThenRecovers(t *testing.T) {
	f := NewFramer(FramerConfig{Framing: FramingCR, MaxLen: 8})
	good, errs := split(run(f, chunk{"0123456789abcdef\r1234\r", 0}))
	if !slices.Equal(good, []string{"1234"}) || len(errs) != 1 || !errors.Is(errs[0], ErrOverflow) {
		t.Errorf("good %q errs %v", good, errs)
	}
}

func TestGapFlagAndTime(t *testing.T) {
	f := NewFramer(FramerConfig{Framing: FramingGap, Gap: 50 * time.Millisecond})
	f.Feed([]byte("1234"), t0)
	if fs := f.Flush(t0.Add(49 * time.Millisecond)); len(fs) != 0 {
		t.Fatalf("flushed before the gap: %+v", fs)
	}
	fs := f.Flush(t0.Add(50 * time.Millisecond))
	if len(fs) != 1 || fs[0].Flags&scanner.FlagGapEnded == 0 || !fs[0].At.Equal(t0) {
		t.Errorf("%+v", fs)
	}
}

func TestDefaultGap(t *testing.T) {
	if g := DefaultGap(9600); g != 50*time.Millisecond {
		t.Errorf("9600: %v", g)
	}
	if g := DefaultGap(1200); g != 250*time.Millisecond {
		t.Errorf("1200: %v", g)
	}
}

func FuzzSerialFramer(f *testing.F) {
	for _, s := range []string{s1 + "\r\n", "\x02" + s1 + "\x03", "zz\x02ab\x02cd\x03\r\n", "1234\r\n5678\n", ""} {
		for i := range 5 {
			f.Add([]byte(s), uint8(i))
		}
	}
	framings := []Framing{FramingCR, FramingLF, FramingCRLF, FramingSTXETX, FramingGap}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		fr := NewFramer(FramerConfig{Framing: framings[int(mode)%len(framings)], MaxLen: 32})
		now := t0
		var out []scanner.Frame
		// Split at arbitrary points with varying pauses, derived from the data.
		for len(data) > 0 {
			n := 1 + int(data[0])%7
			n = min(n, len(data))
			now = now.Add(time.Duration(data[0]%80) * time.Millisecond)
			out = append(out, fr.Feed(data[:n], now)...)
			data = data[n:]
		}
		out = append(out, fr.Flush(now.Add(time.Hour))...)
		for _, o := range out {
			if o.Err == nil && len(o.Data) == 0 {
				t.Fatal("empty scan")
			}
			if o.Err == nil && len(o.Data) > 32 {
				t.Fatalf("scan over MaxLen: %d", len(o.Data))
			}
		}
	})
}
