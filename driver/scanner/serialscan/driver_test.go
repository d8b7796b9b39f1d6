package serialscan

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"

	"tillagent/driver/scanner"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakePort is a pty pair: the driver opens the slave by name with
// go.bug.st/serial exactly as a real port; the test writes to the master.
type fakePort struct {
	master, slave *os.File
}

func openPty(t *testing.T) *fakePort {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pty on this machine: %v", err)
	}
	p := &fakePort{master: m, slave: s}
	t.Cleanup(p.unplug)
	return p
}

// unplug closes both ends, as a USB-CDC scanner pulled out.
func (p *fakePort) unplug() {
	p.master.Close()
	p.slave.Close()
}

func (p *fakePort) write(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// link points a stable name at the pty, as /dev/serial/by-id does.
func link(t *testing.T, name string, p *fakePort) {
	t.Helper()
	tmp := name + ".new"
	os.Remove(tmp)
	if err := os.Symlink(p.slave.Name(), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

type harness struct {
	out    chan scanner.Scan
	health chan scanner.Health
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.Log = quiet
	if cfg.Backoff.Min == 0 {
		cfg.Backoff = scanner.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{out: make(chan scanner.Scan, 16), health: make(chan scanner.Health, 256), cancel: cancel, done: make(chan struct{})}
	d := New(cfg)
	go func() { d.Run(ctx, h.out, func(x scanner.Health) { h.health <- x }); close(h.done) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// The 10 s limits below only keep a broken test from hanging; nothing is timed.
func (h *harness) waitCode(t *testing.T, code scanner.Code) scanner.Health {
	t.Helper()
	limit := time.After(10 * time.Second)
	for {
		select {
		case x := <-h.health:
			if x.Code == code {
				return x
			}
		case <-limit:
			t.Fatalf("no health %s", code)
		}
	}
}

func (h *harness) scan(t *testing.T) scanner.Scan {
	t.Helper()
	select {
	case s := <-h.out:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no scan")
	}
	return scanner.Scan{}
}

func TestSerialFramingsOverPty(t *testing.T) {
	cases := []struct {
		framing Framing
		writes  []string
	}{
		{FramingCRLF, []string{s1[:5], s1[5:] + "\r", "\n"}},
		{FramingCR, []string{s1 + "\r"}},
		{FramingLF, []string{"\r\n" + s1[:9], s1[9:] + "\n"}},
		{FramingSTXETX, []string{"\x02" + s1[:3], s1[3:] + "\x03\r\n"}},
		{FramingGap, []string{s1[:8], s1[8:]}},
	}
	for _, tc := range cases {
		t.Run(string(tc.framing), func(t *testing.T) {
			p := openPty(t)
			h := start(t, Config{Name: "counter", Port: p.slave.Name(), Baud: 9600, Framer: FramerConfig{Framing: tc.framing, Gap: 400 * time.Millisecond}})
			h.waitCode(t, scanner.CodeOK)
			for _, w := range tc.writes {
				p.write(t, w)
				time.Sleep(5 * time.Millisecond) // force partial reads
			}
			s := h.scan(t)
			if string(s.Raw) != s1 || s.AIM != "]E0" || string(s.Label()) != "4601234567893" || s.Symbology != scanner.SymEAN13 || s.Transport != scanner.TransportSerial || s.Device != "counter" {
				t.Errorf("scan %+v", s)
			}
			if tc.framing == FramingGap && s.Flags&scanner.FlagGapEnded == 0 {
				t.Errorf("gap flag missing")
			}
		})
	}
}

func TestSerialGarbageReportedNotDelivered(t *testing.T) {
	p := openPty(t)
	h := start(t, Config{Name: "c", Port: p.slave.Name(), Framer: FramerConfig{Framing: FramingSTXETX, Gap: 50 * time.Millisecond}})
	h.waitCode(t, scanner.CodeOK)
	p.write(t, "\xff\x00noise\x02"+s1+"\x03")
	if s := h.scan(t); string(s.Raw) != s1 {
		t.Errorf("scan %q", s.Raw)
	}
	if x := h.waitCode(t, scanner.CodeFramingError); x.Err == nil {
		t.Error("framing event without error")
	}
	select {
	case s := <-h.out:
		t.Errorf("garbage delivered as a scan: %q", s.Raw)
	default:
	}
}

func TestSerialUnplugAndReconnect(t *testing.T) {
	name := filepath.Join(t.TempDir(), "usb-Honeywell_Scanner-if00")
	p := openPty(t)
	link(t, name, p)
	h := start(t, Config{Name: "counter", Port: name, Framer: FramerConfig{Framing: FramingCRLF}})
	h.waitCode(t, scanner.CodeOK)
	p.write(t, s1+"\r\n")
	h.scan(t)

	// Unplugged: udev removes the by-id link and the tty goes away. The
	// link goes first so that a reopen cannot reach a reused pts number.
	os.Remove(name)
	p.unplug()
	x := h.waitCode(t, scanner.CodeDisconnected)
	if x.Err == nil {
		t.Error("disconnect without error")
	}
	// The driver keeps retrying until a new port appears.
	h.waitCode(t, scanner.CodeNotFound)

	p2 := openPty(t)
	link(t, name, p2)
	h.waitCode(t, scanner.CodeOK)
	p2.write(t, "\r\n"+s1+"\r\n") // a stray terminator first, as after a replug
	if s := h.scan(t); string(s.Raw) != s1 {
		t.Errorf("after reconnect: %q", s.Raw)
	}
	h.stop()
	h.waitCode(t, scanner.CodeStopped)
}

// Several scanners at once; one failing never stops the others.
func TestStreamSeveralScannersOneFailing(t *testing.T) {
	p1, p2 := openPty(t), openPty(t)
	mk := func(name, port string) scanner.Driver {
		return New(Config{Name: name, Port: port, Log: quiet, Framer: FramerConfig{Framing: FramingCR},
			Backoff: scanner.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	}
	health := make(chan scanner.Health, 256)
	ctx, cancel := context.WithCancel(context.Background())
	scans := scanner.Stream(ctx, time.Second, func(h scanner.Health) { health <- h },
		mk("a", p1.slave.Name()), mk("b", p2.slave.Name()), mk("missing", "/dev/does-not-exist"))
	oks := map[string]bool{}
	for len(oks) < 2 {
		select {
		case h := <-health:
			if h.Code == scanner.CodeOK {
				oks[h.Device] = true
			}
		case <-time.After(10 * time.Second):
			t.Fatal("scanners did not open")
		}
	}
	p1.write(t, "AAAA\r")
	p2.write(t, "BBBB\r")
	p2.write(t, "BBBB\r")
	got := map[string]int{}
	dups := 0
	for range 3 {
		select {
		case s := <-scans:
			got[s.Device+":"+string(s.Raw)]++
			if s.Flags&scanner.FlagDuplicate != 0 {
				dups++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("scans so far %v", got)
		}
	}
	if got["a:AAAA"] != 1 || got["b:BBBB"] != 2 || dups != 1 {
		t.Errorf("got %v, %d duplicates", got, dups)
	}
	// Scanner a is pulled out: it is reported, and b goes on delivering.
	p1.unplug()
	for gone := false; !gone; {
		select {
		case h := <-health:
			gone = h.Device == "a" && h.Code == scanner.CodeDisconnected
			if h.Device == "b" && h.Code != scanner.CodeOK {
				t.Errorf("b reported %s when a was unplugged", h.Code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("unplug of a not reported")
		}
	}
	p2.write(t, "CCCC\r")
	select {
	case s := <-scans:
		if s.Device != "b" || string(s.Raw) != "CCCC" {
			t.Errorf("after a was unplugged: %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b stopped delivering after a was unplugged")
	}
	cancel()
	for range scans { // closed once every driver stopped
	}
}
