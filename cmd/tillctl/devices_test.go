package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/driver/scanner/hidscan"
)

type listBus []hidscan.Info

func (listBus) Supported() bool                                 { return true }
func (b listBus) Enumerate(_, _ uint16) ([]hidscan.Info, error) { return b, nil }
func (listBus) Open(hidscan.Info) (hidscan.Device, error)       { return nil, os.ErrNotExist }

// usbNode writes a fake usbfs node holding the device descriptor of vid:pid.
func usbNode(t *testing.T, root, name string, vid, pid uint16) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	desc := []byte{18, 1, 0, 2, 0, 0, 0, 64, byte(vid), byte(vid >> 8), byte(pid), byte(pid >> 8), 0, 1, 1, 2, 3, 1}
	if err := os.WriteFile(p, desc, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestListHIDMarksScanners: the keyboard's missing strings are no warning
// (it is root's on a set-up till); the configured scanner is marked.
func TestListHIDMarksScanners(t *testing.T) {
	dev := t.TempDir()
	usbNode(t, dev, "001/002", 0x046d, 0xc31c)
	usbNode(t, dev, "001/005", 0x1a86, 0x7523)
	bus := listBus{
		{Path: "1-1:1.0", VendorID: 0x046d, ProductID: 0xc31c},
		{Path: "1-2:1.0", VendorID: 0x1a86, ProductID: 0x7523, Manufacturer: "ACME", Product: "Scan"},
	}
	var out bytes.Buffer
	listHID(&out, bus, hidscan.AccessCheck{DevRoot: dev, SysfsRoot: t.TempDir(),
		Scanners: hidscan.ScannerIDs(hidscan.USBID{Vendor: 0x1a86, Product: 0x7523})})
	got := out.String()
	if strings.Contains(got, "warning") || strings.Contains(got, "note") {
		t.Errorf("set-up till warns:\n%s", got)
	}
	for _, want := range []string{"046d:c31c  -  ", "1a86:7523  yes"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}

	out.Reset()
	listHID(&out, bus, hidscan.AccessCheck{DevRoot: dev, SysfsRoot: t.TempDir(), Scanners: hidscan.ScannerIDs()})
	if !strings.Contains(out.String(), "note: no known USB scanner plugged in among 2 USB devices") {
		t.Errorf("unconfigured scanner:\n%s", out.String())
	}
}

type noCgoBus struct{ listBus }

func (noCgoBus) Supported() bool { return false }

// Built without cgo, tillctl devices says so plainly instead of listing nothing.
func TestListHIDWithoutCgo(t *testing.T) {
	var out bytes.Buffer
	listHID(&out, noCgoBus{}, hidscan.AccessCheck{})
	if got := out.String(); !strings.Contains(got, "built without cgo") || !strings.Contains(got, "CGO_ENABLED=1") {
		t.Errorf("%s", got)
	}
}
