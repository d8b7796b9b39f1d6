package scanner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestSplitAIM(t *testing.T) {
	cases := []struct {
		data string
		aim  string
		sym  Symbology
		gs1  bool
	}{
		{"]E04601234567893", "]E0", SymEAN13, false},
		{"]E0036000291452", "]E0", SymUPCA, false},
		{"]E496385074", "]E4", SymEAN8, false},
		{"]C1010460123456789317", "]C1", SymGS1_128, true},
		{"]C0ABC", "]C0", SymCode128, false},
		{"]Q1LC1:xyz", "]Q1", SymQR, false},
		{"]Q3010460", "]Q3", SymGS1QR, true},
		{"]d2010460", "]d2", SymGS1DataMatrix, true},
		{"]d1abc", "]d1", SymDataMatrix, false},
		{"]e0010460", "]e0", SymGS1DataBar, true},
		{"]Z6reply", "]Z6", SymUnknown, false},
		{"4601234567893", "", SymUnknown, false},
		{"]E", "", SymUnknown, false},
		{"] 0abc", "", SymUnknown, false},
	}
	for _, tc := range cases {
		aim, sym := SplitAIM([]byte(tc.data))
		if aim != tc.aim || sym != tc.sym {
			t.Errorf("%q: got %q %v want %q %v", tc.data, aim, sym, tc.aim, tc.sym)
		}
		if s := (Frame{Data: []byte(tc.data)}).ToScan("d", TransportSerial); s.GS1() != tc.gs1 || string(s.Label()) != tc.data[len(aim):] {
			t.Errorf("%q: gs1 %v label %q", tc.data, s.GS1(), s.Label())
		}
	}
	if !IsReply("]Z6") || IsReply("]X0") {
		t.Error("IsReply")
	}
	if s := (Frame{Data: []byte("0104601234567893\x1d93ab")}).ToScan("d", TransportSerial); !s.GS1() {
		t.Error("GS in data without AIM is GS1")
	}
	if s := (Frame{Data: []byte("4601234567893"), CodeID: 'd'}).ToScan("d", TransportHIDPOS); s.Symbology != SymEAN13 {
		t.Errorf("code id fallback: %v", s.Symbology)
	}
}

func TestSymbologyNames(t *testing.T) {
	for s := SymUnknown; s <= SymOther; s++ {
		if s.String() == "" || (s != SymUnknown && s.UPOS() == 0) {
			t.Errorf("symbology %d: %q %d", s, s.String(), s.UPOS())
		}
	}
	if SymGS1DataMatrix.UPOS() != 208 || SymEAN13.UPOS() != 104 || SymQR.UPOS() != 204 {
		t.Error("UPOS values")
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable([]byte("01\x1d93\r\n\x07é")); got != "01<GS>93<CR><LF><0x07>é" {
		t.Errorf("%q", got)
	}
}

func TestDedup(t *testing.T) {
	d := NewDedup(time.Second)
	t0 := time.Now()
	s := []Scan{
		{Device: "a", Raw: []byte("1"), At: t0},
		{Device: "a", Raw: []byte("1"), At: t0.Add(500 * time.Millisecond)},
		{Device: "b", Raw: []byte("1"), At: t0.Add(600 * time.Millisecond)},
		{Device: "a", Raw: []byte("1"), At: t0.Add(3 * time.Second)},
		{Device: "a", Raw: []byte("2"), At: t0.Add(3100 * time.Millisecond)},
	}
	var got []bool
	for i := range s {
		d.Mark(&s[i])
		got = append(got, s[i].Flags&FlagDuplicate != 0)
	}
	if want := []bool{false, true, false, false, false}; !slices.Equal(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
}

// Supervise reports each state once, backs off, and stops on cancel.
func TestSuperviseHealthAndBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var codes []Code
	calls := 0
	session := func(ctx context.Context, up func()) error {
		calls++
		switch {
		case calls <= 3:
			return &DeviceError{Op: "open", Device: "/dev/x", Code: CodeNotFound, Err: errors.New("no such file")}
		case calls == 4:
			up()
			return &DeviceError{Op: "read", Device: "/dev/x", Code: CodeDisconnected, Err: errors.New("EIO")}
		case calls == 5:
			up()
			return errors.New("plain error after open")
		default:
			cancel()
			return ctx.Err()
		}
	}
	Supervise(ctx, "x", Backoff{Min: time.Microsecond, Max: time.Millisecond}, quiet, func(h Health) {
		if h.Device != "x" {
			t.Errorf("device %q", h.Device)
		}
		codes = append(codes, h.Code)
	}, session)
	want := []Code{CodeNotFound, CodeOK, CodeDisconnected, CodeOK, CodeDisconnected, CodeStopped}
	if !slices.Equal(codes, want) {
		t.Errorf("codes %v want %v", codes, want)
	}
}

func TestDeliverQueueFullAndFramingErrors(t *testing.T) {
	out := make(chan Scan, 1)
	var hs []Health
	frames := []Frame{{Data: []byte("1111")}, {Data: []byte("zz"), Err: errors.New("garbage")}, {Data: []byte("2222")}}
	Deliver(context.Background(), quiet, "a", TransportSerial, frames, out, func(h Health) { hs = append(hs, h) })
	if s := <-out; string(s.Raw) != "1111" || s.Device != "a" {
		t.Errorf("scan %+v", s)
	}
	if len(hs) != 2 || hs[0].Code != CodeFramingError || hs[1].Code != CodeQueueFull {
		t.Errorf("health %+v", hs)
	}
}

func TestCodeOf(t *testing.T) {
	err := errors.Join(errors.New("x"), &DeviceError{Code: CodeBusy, Err: errors.New("busy")})
	if CodeOf(err) != CodeBusy || CodeOf(errors.New("y")) != CodeOpenFailed {
		t.Error("CodeOf")
	}
}

// The waits between reopen attempts double from Min up to Max while the
// device stays missing, and start again from Min after it was open.
func TestSuperviseBackoffSchedule(t *testing.T) {
	var waits []time.Duration
	defer func(f func(time.Duration) (<-chan time.Time, func() bool)) { newTimer = f }(newTimer)
	newTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
		waits = append(waits, d)
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c, func() bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	missing := &DeviceError{Op: "open", Device: "/dev/x", Code: CodeNotFound, Err: errors.New("no such file")}
	var reports []Code
	Supervise(ctx, "x", Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Second}, quiet, func(h Health) { reports = append(reports, h.Code) },
		func(ctx context.Context, up func()) error {
			calls++
			switch {
			case calls <= 6: // missing for a while
				return missing
			case calls == 7: // plugged in, then pulled out
				up()
				return &DeviceError{Op: "read", Device: "/dev/x", Code: CodeDisconnected, Err: errors.New("EIO")}
			case calls <= 9:
				return missing
			}
			cancel()
			return ctx.Err()
		})
	ms := time.Millisecond
	want := []time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, // capped
		250 * ms, 500 * ms, time.Second} // reset after the open session
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v\nwant  %v", waits, want)
	}
	// Six failed attempts, one report.
	if wantCodes := []Code{CodeNotFound, CodeOK, CodeDisconnected, CodeNotFound, CodeStopped}; !slices.Equal(reports, wantCodes) {
		t.Errorf("reports %v want %v", reports, wantCodes)
	}
}
