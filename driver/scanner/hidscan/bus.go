package hidscan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/karalabe/hid"
)

// Info describes one HID interface of a USB device.
type Info struct {
	Path         string // "1-1.2:1.0": bus-ports:config.interface, the sysfs interface name
	VendorID     uint16
	ProductID    uint16
	Serial       string
	Manufacturer string
	Product      string
	Interface    int
}

// Device is an open HID interface. ReadTimeout returns (0, nil) when no
// report arrived within ms milliseconds; any error means the device is gone.
// Close must be called from the goroutine that reads (the C layer frees the
// device under a blocked reader).
type Device interface {
	ReadTimeout(b []byte, ms int) (int, error)
	Close() error
}

// Bus finds and opens HID devices. SystemBus is the real one; tests feed
// recorded reports through a fake.
type Bus interface {
	// Supported is false when the build cannot reach USB HID (no cgo).
	Supported() bool
	Enumerate(vid, pid uint16) ([]Info, error)
	Open(Info) (Device, error)
}

// SystemBus is USB HID through github.com/karalabe/hid (libusb; opening
// detaches the kernel driver, so a wedge scanner stops typing into the desktop).
type SystemBus struct{}

func (SystemBus) Supported() bool { return hid.Supported() }

func (SystemBus) Enumerate(vid, pid uint16) ([]Info, error) {
	ds, err := hid.Enumerate(vid, pid)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ds))
	for _, d := range ds {
		out = append(out, Info{Path: d.Path, VendorID: d.VendorID, ProductID: d.ProductID,
			Serial: d.Serial, Manufacturer: d.Manufacturer, Product: d.Product, Interface: d.Interface})
	}
	return out, nil
}

func (SystemBus) Open(i Info) (Device, error) {
	ds, err := hid.Enumerate(i.VendorID, i.ProductID)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.Path == i.Path {
			return d.Open()
		}
	}
	return nil, os.ErrNotExist
}

// Kind is what an interface carries, read from sysfs before opening.
type Kind int

const (
	KindUnknown Kind = iota
	KindKeyboard
	KindPOS
)

func (k Kind) String() string {
	return [...]string{"unknown", "keyboard", "hid-pos"}[k]
}

// ProbeKind reads sysfs (root is normally "/sys") for the interface at path:
// a report descriptor with usage page 0x8C is HID POS; boot protocol 1 is a
// keyboard. It must run before the interface is opened: once usbhid is
// detached the descriptor file disappears. karalabe/hid reports no usage
// page on Linux, hence this.
func ProbeKind(root, path string) Kind {
	k, _ := Probe(root, path)
	return k
}

// Probe is ProbeKind that also returns the report descriptor, if readable.
func Probe(root, path string) (Kind, []byte) {
	dir := filepath.Join(root, "bus/usb/devices", path)
	var desc []byte
	if descs, _ := filepath.Glob(filepath.Join(dir, "*:*.*", "report_descriptor")); len(descs) > 0 {
		if b, err := os.ReadFile(descs[0]); err == nil {
			desc = b
			if bytes.Contains(b, []byte{0x05, 0x8C}) || bytes.Contains(b, []byte{0x06, 0x8C, 0x00}) {
				return KindPOS, desc
			}
			if bytes.Contains(b, []byte{0x05, 0x01, 0x09, 0x06}) {
				return KindKeyboard, desc
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bInterfaceProtocol")); err == nil && strings.TrimSpace(string(b)) == "01" {
		return KindKeyboard, desc
	}
	return KindUnknown, desc
}
