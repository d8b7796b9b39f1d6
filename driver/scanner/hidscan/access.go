package hidscan

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"tillagent/driver/scanner"
)

// USBID is a USB device the agent must be able to open: a vendor, and a
// product or 0 for every product of that vendor.
type USBID struct{ Vendor, Product uint16 }

func (id USBID) String() string {
	if id.Product == 0 {
		return fmt.Sprintf("%04x:*", id.Vendor)
	}
	return fmt.Sprintf("%04x:%04x", id.Vendor, id.Product)
}

// Matches reports whether a device with these ids is id.
func (id USBID) Matches(vid, pid uint16) bool {
	return id.Vendor == vid && (id.Product == 0 || id.Product == pid)
}

// UdevVendors are the scanner vendors that deploy/udev/70-tillagent-scanners.rules
// opens to the agent (a test keeps the two in step).
var UdevVendors = []uint16{0x0c2e, 0x23d0, 0x1eab, 0x05e0, 0x05f9}

// ScannerIDs is what counts as a scanner for CheckAccess: the configured
// devices plus every product of the vendors in the shipped udev rules.
func ScannerIDs(configured ...USBID) []USBID {
	out := slices.Clone(configured)
	for _, v := range UdevVendors {
		out = append(out, USBID{Vendor: v})
	}
	return out
}

// ErrNoScanner: none of the USB devices is a known scanner, so there was no
// access to check. Not a permission problem.
var ErrNoScanner = errors.New("no known USB scanner plugged in")

// AccessCheck says where CheckAccess looks and what it looks for.
type AccessCheck struct {
	// DevRoot holds the usbfs nodes BBB/DDD; "" means /dev/bus/usb.
	DevRoot string
	// SysfsRoot names the nodes this user cannot read; "" means /sys.
	SysfsRoot string
	// Scanners are the devices that must be writable (ScannerIDs).
	Scanners []USBID
	// writable is unix.Access(W_OK) except in tests, which run as root.
	writable func(path string) bool
}

// CheckAccess says why USB HID scanners cannot be used here, or nil: the
// build has no HID support (no cgo), there is no USB bus (container/VM),
// no scanner is plugged in (ErrNoScanner), or this user may not write the
// node of a scanner, which libusb needs to open it. Only scanner nodes are
// checked: the udev rules open scanner vendors alone, and every other node
// (keyboard, hub, card reader) is rightly root's.
func CheckAccess(bus Bus, a AccessCheck) error {
	if !bus.Supported() {
		return scanner.ErrHIDUnsupported
	}
	if a.DevRoot == "" {
		a.DevRoot = "/dev/bus/usb"
	}
	if a.SysfsRoot == "" {
		a.SysfsRoot = "/sys"
	}
	if a.writable == nil {
		a.writable = func(p string) bool { return unix.Access(p, unix.W_OK) == nil }
	}
	nodes, _ := filepath.Glob(filepath.Join(a.DevRoot, "[0-9][0-9][0-9]", "[0-9][0-9][0-9]"))
	if len(nodes) == 0 {
		return fmt.Errorf("no USB devices visible at %s (container or VM without USB passthrough?)", a.DevRoot)
	}
	var sysIDs map[string]USBID // read once, only if some node cannot be read
	var denied []string
	unknown, found := 0, 0
	for _, n := range nodes {
		vid, pid, ok := nodeIDs(n)
		if !ok {
			if sysIDs == nil {
				sysIDs = sysfsIDs(a.SysfsRoot)
			}
			id, known := sysIDs[nodeKey(n)]
			if !known {
				unknown++
				continue
			}
			vid, pid = id.Vendor, id.Product
		}
		if !slices.ContainsFunc(a.Scanners, func(s USBID) bool { return s.Matches(vid, pid) }) {
			continue
		}
		found++
		if !a.writable(n) {
			denied = append(denied, fmt.Sprintf("%04x:%04x at %s", vid, pid, n))
		}
	}
	switch {
	case len(denied) > 0:
		return fmt.Errorf("no write access to USB scanner %s: install deploy/udev/70-tillagent-scanners.rules (add the vendor if missing), put uid %d in group tillagent, and replug",
			strings.Join(denied, ", "), os.Getuid())
	case found == 0 && unknown > 0:
		return fmt.Errorf("%w among %d USB devices at %s (%d could not be identified: no read access and no sysfs)",
			ErrNoScanner, len(nodes), a.DevRoot, unknown)
	case found == 0:
		return fmt.Errorf("%w among %d USB devices at %s (looked for %s)", ErrNoScanner, len(nodes), a.DevRoot, idList(a.Scanners))
	}
	return nil
}

// nodeIDs reads the vendor and product from a usbfs node, which starts
// with the 18-byte device descriptor (idVendor at 8, idProduct at 10,
// little-endian). Reading needs no write access and claims nothing.
func nodeIDs(path string) (vid, pid uint16, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var d [18]byte
	if _, err := io.ReadFull(f, d[:]); err != nil || d[0] != 18 || d[1] != 1 {
		return 0, 0, false
	}
	return uint16(d[8]) | uint16(d[9])<<8, uint16(d[10]) | uint16(d[11])<<8, true
}

// nodeKey is "BBB/DDD" of a node path.
func nodeKey(path string) string {
	return filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
}

// sysfsIDs maps "BBB/DDD" to ids from sysfs, which anyone may read: a
// scanner node made 0660 by udev is unreadable to a user outside the group,
// and that user is exactly the one to warn.
func sysfsIDs(root string) map[string]USBID {
	out := map[string]USBID{}
	dirs, _ := filepath.Glob(filepath.Join(root, "bus/usb/devices", "*"))
	for _, d := range dirs {
		read := func(name string, base int) (uint64, bool) {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				return 0, false
			}
			v, err := strconv.ParseUint(strings.TrimSpace(string(b)), base, 16)
			return v, err == nil
		}
		bus, ok1 := read("busnum", 10)
		dev, ok2 := read("devnum", 10)
		vid, ok3 := read("idVendor", 16)
		pid, ok4 := read("idProduct", 16)
		if ok1 && ok2 && ok3 && ok4 {
			out[fmt.Sprintf("%03d/%03d", bus, dev)] = USBID{Vendor: uint16(vid), Product: uint16(pid)}
		}
	}
	return out
}

func idList(ids []USBID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, " ")
}
