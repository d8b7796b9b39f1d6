package hidscan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tillagent/driver/scanner"
)

// usbTree is a fake /dev/bus/usb (and /sys) under t.TempDir().
type usbTree struct {
	t        *testing.T
	dev, sys string
	readOnly map[string]bool // nodes this "user" may not write
}

func newUSBTree(t *testing.T) *usbTree {
	root := t.TempDir()
	return &usbTree{t: t, dev: filepath.Join(root, "dev/bus/usb"), sys: filepath.Join(root, "sys"), readOnly: map[string]bool{}}
}

// plug adds node bus/dev with a device descriptor for vid:pid. hidden nodes
// hold no descriptor (as if unreadable) and are known only to sysfs.
func (u *usbTree) plug(bus, dev int, vid, pid uint16, writable, hidden bool) string {
	u.t.Helper()
	node := filepath.Join(u.dev, fmt.Sprintf("%03d", bus), fmt.Sprintf("%03d", dev))
	desc := []byte{18, 1, 0x00, 0x02, 0, 0, 0, 64, byte(vid), byte(vid >> 8), byte(pid), byte(pid >> 8), 0, 1, 1, 2, 3, 1}
	if hidden {
		desc = nil
		sd := filepath.Join(u.sys, "bus/usb/devices", fmt.Sprintf("%d-%d", bus, dev))
		for name, v := range map[string]string{"busnum": strconv.Itoa(bus), "devnum": strconv.Itoa(dev),
			"idVendor": fmt.Sprintf("%04x", vid), "idProduct": fmt.Sprintf("%04x", pid)} {
			u.write(filepath.Join(sd, name), []byte(v+"\n"))
		}
	}
	u.write(node, desc)
	u.readOnly[node] = !writable
	return node
}

func (u *usbTree) write(path string, b []byte) {
	u.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		u.t.Fatal(err)
	}
}

func (u *usbTree) check(bus Bus, ids ...USBID) error {
	return CheckAccess(bus, AccessCheck{DevRoot: u.dev, SysfsRoot: u.sys, Scanners: ScannerIDs(ids...),
		writable: func(p string) bool { return !u.readOnly[p] }})
}

func TestCheckAccess(t *testing.T) {
	const (
		honeywell = 0x0c2e // a udev-rule vendor
		keyboard  = 0x046d
		hub       = 0x1d6b
		other     = 0x1a86 // a scanner vendor the rules lack, configured by id
	)
	t.Run("NoBus", func(t *testing.T) {
		u := newUSBTree(t)
		if err := u.check(newFakeBus()); err == nil || !strings.Contains(err.Error(), "no USB devices visible") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("Unsupported", func(t *testing.T) {
		u := newUSBTree(t)
		bus := newFakeBus()
		bus.unsupported = true
		if err := u.check(bus); !errors.Is(err, scanner.ErrHIDUnsupported) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("SetUpTill", func(t *testing.T) {
		// Root-owned keyboard and hub, scanner opened by the udev rule: fine.
		u := newUSBTree(t)
		u.plug(1, 1, hub, 0x0002, false, false)
		u.plug(1, 2, keyboard, 0xc31c, false, false)
		u.plug(1, 5, honeywell, 0x0b61, true, false)
		if err := u.check(newFakeBus()); err != nil {
			t.Errorf("got %v", err)
		}
	})
	t.Run("ScannerNotWritable", func(t *testing.T) {
		u := newUSBTree(t)
		u.plug(1, 2, keyboard, 0xc31c, false, false)
		u.plug(2, 7, honeywell, 0x0b61, false, false)
		err := u.check(newFakeBus())
		if err == nil || !strings.Contains(err.Error(), "0c2e:0b61 at "+filepath.Join(u.dev, "002", "007")) ||
			strings.Contains(err.Error(), "046d") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("ConfiguredScannerOutsideRules", func(t *testing.T) {
		u := newUSBTree(t)
		u.plug(1, 3, other, 0x7523, false, false)
		if err := u.check(newFakeBus()); !errors.Is(err, ErrNoScanner) {
			t.Errorf("unconfigured: got %v", err)
		}
		if err := u.check(newFakeBus(), USBID{other, 0x7523}); err == nil || errors.Is(err, ErrNoScanner) ||
			!strings.Contains(err.Error(), "1a86:7523") {
			t.Errorf("configured: got %v", err)
		}
		if err := u.check(newFakeBus(), USBID{other, 0x0001}); !errors.Is(err, ErrNoScanner) {
			t.Errorf("other product configured: got %v", err)
		}
	})
	t.Run("UnreadableNodeFoundViaSysfs", func(t *testing.T) {
		// A scanner node made 0660 by udev, seen by a user outside the group.
		u := newUSBTree(t)
		u.plug(1, 2, keyboard, 0xc31c, false, false)
		u.plug(3, 9, honeywell, 0x0b61, false, true)
		if err := u.check(newFakeBus()); err == nil || !strings.Contains(err.Error(), "0c2e:0b61") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("NoScanner", func(t *testing.T) {
		u := newUSBTree(t)
		u.plug(1, 2, keyboard, 0xc31c, false, false)
		u.write(filepath.Join(u.dev, "001", "004"), nil) // unidentifiable
		err := u.check(newFakeBus())
		if !errors.Is(err, ErrNoScanner) || !strings.Contains(err.Error(), "1 could not be identified") {
			t.Errorf("got %v", err)
		}
	})
}

// The vendors CheckAccess assumes the udev rules open must be the ones the
// shipped rules really open, for every subsystem.
func TestUdevRulesMatchVendors(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/udev/70-tillagent-scanners.rules")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(UdevVendors)
	slices.Sort(want)
	re := regexp.MustCompile(`^SUBSYSTEM=="(\w+)".*ATTRS?\{idVendor\}=="([0-9a-f]{4})"`)
	got := map[string][]uint16{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[2], 16, 16)
			got[m[1]] = append(got[m[1]], uint16(v))
		}
	}
	for _, sub := range []string{"usb", "hidraw", "tty"} {
		vs := got[sub]
		slices.Sort(vs)
		if !slices.Equal(vs, want) {
			t.Errorf("udev %s rules open vendors %04x, UdevVendors is %04x", sub, vs, want)
		}
	}
}
