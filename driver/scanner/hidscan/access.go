package hidscan

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"tillagent/driver/scanner"
)

// CheckAccess says why USB HID scanners cannot be used here, or nil: the
// build has no HID support (no cgo), there is no USB bus (container/VM), or
// this user may not write the USB device nodes under root (normally
// /dev/bus/usb), which libusb needs to open anything.
func CheckAccess(bus Bus, root string) error {
	if !bus.Supported() {
		return scanner.ErrHIDUnsupported
	}
	nodes, _ := filepath.Glob(filepath.Join(root, "*", "*"))
	if _, err := os.Stat(root); err != nil || len(nodes) == 0 {
		return fmt.Errorf("no USB devices visible at %s (container or VM without USB passthrough?)", root)
	}
	denied := 0
	for _, n := range nodes {
		if unix.Access(n, unix.W_OK) != nil {
			denied++
		}
	}
	if denied > 0 {
		return fmt.Errorf("no write access to %d of %d USB device nodes in %s: install deploy/udev/70-tillagent-scanners.rules and replug (uid %d)",
			denied, len(nodes), root, os.Getuid())
	}
	return nil
}
