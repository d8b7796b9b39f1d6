package hidscan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tillagent/driver/scanner"
)

// fakeBus stands in for USB: the test plugs devices in and out and feeds
// their reports.
type fakeBus struct {
	mu          sync.Mutex
	unsupported bool
	devs        map[string]*fakeDev // by path
	openErr     error
	opens       int
}

type fakeDev struct {
	info    Info
	reports chan []byte // closed = unplugged
	closed  chan struct{}
}

func newFakeBus() *fakeBus { return &fakeBus{devs: map[string]*fakeDev{}} }

func (b *fakeBus) plug(i Info) *fakeDev {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := &fakeDev{info: i, reports: make(chan []byte, 256), closed: make(chan struct{})}
	b.devs[i.Path] = d
	return d
}

func (b *fakeBus) unplug(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.devs[path].reports)
	delete(b.devs, path)
}

func (b *fakeBus) Supported() bool { return !b.unsupported }

func (b *fakeBus) Enumerate(vid, pid uint16) ([]Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Info
	for _, d := range b.devs {
		if d.info.VendorID == vid && d.info.ProductID == pid {
			out = append(out, d.info)
		}
	}
	return out, nil
}

func (b *fakeBus) Open(i Info) (Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	if b.openErr != nil {
		return nil, b.openErr
	}
	d, ok := b.devs[i.Path]
	if !ok {
		return nil, os.ErrNotExist
	}
	return d, nil
}

func (d *fakeDev) ReadTimeout(buf []byte, ms int) (int, error) {
	select {
	case r, ok := <-d.reports:
		if !ok {
			return 0, errors.New("hid_error is not implemented yet")
		}
		return copy(buf, r), nil
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return 0, nil
	}
}

func (d *fakeDev) Close() error { return nil }

func (d *fakeDev) feedFile(t *testing.T, path string) {
	for _, r := range load(t, path).Reports() {
		d.reports <- r
	}
}

type collector struct {
	mu     sync.Mutex
	health []scanner.Health
	ch     chan scanner.Health
}

func newCollector() *collector { return &collector{ch: make(chan scanner.Health, 100)} }

func (c *collector) report(h scanner.Health) { c.ch <- h }

// waitCode waits for a health code; the generous limit only stops a hung test.
func (c *collector) waitCode(t *testing.T, code scanner.Code) scanner.Health {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case h := <-c.ch:
			if h.Code == code {
				return h
			}
		case <-deadline:
			t.Fatalf("no health %s", code)
		}
	}
}

func waitScan(t *testing.T, ch <-chan scanner.Scan) scanner.Scan {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no scan")
	}
	return scanner.Scan{}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestDriverReadsUnplugReplug(t *testing.T) {
	bus := newFakeBus()
	info := Info{Path: "1-1.2:1.0", VendorID: 0x0c2e, ProductID: 0x0b61, Product: "Voyager", Interface: 0}
	dev := bus.plug(info)
	drv := New(Config{Name: "front", VendorID: 0x0c2e, ProductID: 0x0b61, Interface: -1, Bus: bus, SysfsRoot: t.TempDir(),
		Backoff: scanner.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}, Log: quiet, PollMS: 5})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan scanner.Scan, 16)
	col := newCollector()
	done := make(chan struct{})
	go func() { drv.Run(ctx, out, col.report); close(done) }()

	col.waitCode(t, scanner.CodeOK)
	dev.feedFile(t, "../../../testdata/scanner/wedge/w2_gs1_ctrl_gs.hex")
	s := waitScan(t, out)
	if s.Device != "front" || s.Transport != scanner.TransportHIDKeyboard || s.AIM != "]d2" || s.Symbology != scanner.SymGS1DataMatrix || !s.GS1() {
		t.Errorf("scan %+v", s)
	}
	bus.unplug(info.Path)
	col.waitCode(t, scanner.CodeDisconnected)
	col.waitCode(t, scanner.CodeNotFound)

	// Replugged, now delivering through HID POS.
	dev = bus.plug(info)
	col.waitCode(t, scanner.CodeOK)
	dev.feedFile(t, "../../../testdata/scanner/pos/h2_qr_two_reports.hex")
	s = waitScan(t, out)
	if s.Transport != scanner.TransportHIDPOS || s.Symbology != scanner.SymQR || len(s.Label()) != 70 {
		t.Errorf("scan %+v", s)
	}
	cancel()
	<-done
	col.waitCode(t, scanner.CodeStopped)
}

func TestDriverWedgeGapFlushOnSilence(t *testing.T) {
	bus := newFakeBus()
	dev := bus.plug(Info{Path: "1-1:1.0", VendorID: 1, ProductID: 2, Product: "x"})
	drv := New(Config{Name: "w", VendorID: 1, ProductID: 2, Interface: -1, Bus: bus, SysfsRoot: t.TempDir(), Log: quiet, PollMS: 5,
		Wedge: WedgeConfig{Gap: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan scanner.Scan, 4)
	go drv.Run(ctx, out, nil)
	for _, r := range [][]byte{rpt(0, 0x1E), rel, rpt(0, 0x1F), rel, rpt(0, 0x20), rel, rpt(0, 0x21), rel} {
		dev.reports <- r
	}
	if s := waitScan(t, out); string(s.Raw) != "1234" || s.Flags&scanner.FlagGapEnded == 0 {
		t.Errorf("scan %+v", s)
	}
}

func TestDriverHealthCodes(t *testing.T) {
	cases := []struct {
		name string
		prep func(*fakeBus)
		want scanner.Code
	}{
		{"unsupported", func(b *fakeBus) { b.unsupported = true }, scanner.CodeHIDUnsupported},
		{"not found", func(b *fakeBus) {}, scanner.CodeNotFound},
		{"permission", func(b *fakeBus) {
			b.plug(Info{Path: "1-1:1.0", VendorID: 1, ProductID: 2}) // no strings: hidapi could not open it
			b.openErr = errors.New("hid_error is not implemented yet")
		}, scanner.CodePermission},
		{"busy or other", func(b *fakeBus) {
			b.plug(Info{Path: "1-1:1.0", VendorID: 1, ProductID: 2, Product: "Scanner"})
			b.openErr = errors.New("hid_error is not implemented yet")
		}, scanner.CodeOpenFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus()
			tc.prep(bus)
			drv := New(Config{Name: "x", VendorID: 1, ProductID: 2, Interface: -1, Bus: bus, SysfsRoot: t.TempDir(), Log: quiet})
			ctx, cancel := context.WithCancel(context.Background())
			col := newCollector()
			done := make(chan struct{})
			go func() { drv.Run(ctx, make(chan scanner.Scan), col.report); close(done) }()
			h := col.waitCode(t, tc.want)
			if h.Err == nil || h.Device != "x" {
				t.Errorf("health %+v", h)
			}
			cancel()
			<-done
		})
	}
}

func TestPickPrefersHIDPOSInterface(t *testing.T) {
	root := t.TempDir()
	mk := func(path, name string, b []byte) {
		dir := filepath.Join(root, "bus/usb/devices", path)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Honeywell composite: keyboard on 0, HID POS on 1, remote management on 2.
	mk("1-1:1.0", "bInterfaceProtocol", []byte("01\n"))
	mk("1-1:1.0", "0003:0C2E:0B61.0001/report_descriptor", []byte{0x05, 0x01, 0x09, 0x06, 0xA1, 0x01})
	mk("1-1:1.1", "bInterfaceProtocol", []byte("00\n"))
	mk("1-1:1.1", "0003:0C2E:0B61.0002/report_descriptor", []byte{0x06, 0x8C, 0x00, 0x09, 0x02, 0xA1, 0x01})
	mk("1-1:1.2", "bInterfaceProtocol", []byte("00\n"))
	infos := []Info{{Path: "1-1:1.2", Interface: 2}, {Path: "1-1:1.0", Interface: 0}, {Path: "1-1:1.1", Interface: 1}}
	d := New(Config{Interface: -1, SysfsRoot: root})
	if i, k, ok := d.pick(infos); !ok || i.Interface != 1 || k != KindPOS {
		t.Errorf("picked %+v %v", i, k)
	}
	d = New(Config{Interface: 0, SysfsRoot: root})
	if i, k, ok := d.pick(infos); !ok || i.Interface != 0 || k != KindKeyboard {
		t.Errorf("configured interface 0: picked %+v %v", i, k)
	}
	d = New(Config{Interface: -1, Serial: "nope", SysfsRoot: root})
	if _, _, ok := d.pick(infos); ok {
		t.Error("serial filter ignored")
	}
}
