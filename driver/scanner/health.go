package scanner

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable health code; the till UI translates it. Never rename one.
type Code string

const (
	CodeOK             Code = "scanner.ok"                // open and reading
	CodeNotFound       Code = "scanner.not_found"         // not plugged in (no matching HID device, no port)
	CodeDisconnected   Code = "scanner.disconnected"      // was open, read failed: unplugged or broken
	CodePermission     Code = "scanner.permission_denied" // udev rules missing (see deploy/udev)
	CodeBusy           Code = "scanner.busy"              // another process holds it (second agent, ModemManager)
	CodeOpenFailed     Code = "scanner.open_failed"       // any other open error
	CodeHIDUnsupported Code = "scanner.hid_unsupported"   // built without cgo or platform unsupported
	CodeFramingError   Code = "scanner.framing_error"     // a message was discarded (overflow, garbage, unterminated)
	CodeQueueFull      Code = "scanner.queue_full"        // nobody consumes scans; new scans are dropped
	CodeStopped        Code = "scanner.stopped"           // context cancelled
)

// Health is one health transition of one device.
type Health struct {
	Device string
	Code   Code
	Err    error // nil for CodeOK and CodeStopped
	At     time.Time
}

func (h Health) String() string {
	if h.Err != nil {
		return fmt.Sprintf("%s: %s: %v", h.Device, h.Code, h.Err)
	}
	return fmt.Sprintf("%s: %s", h.Device, h.Code)
}

// DeviceError carries a health code with the operation that failed, so that
// the supervisor can report it without knowing the transport.
type DeviceError struct {
	Op     string // "open", "read", "enumerate"
	Device string // port path or HID path / VID:PID
	Code   Code
	Err    error
	Hint   string // what a technician should do, if known
}

func (e *DeviceError) Error() string {
	s := fmt.Sprintf("%s %s: %v", e.Op, e.Device, e.Err)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *DeviceError) Unwrap() error { return e.Err }

// CodeOf returns the health code an error carries, CodeOpenFailed if none.
func CodeOf(err error) Code {
	var de *DeviceError
	if errors.As(err, &de) {
		return de.Code
	}
	return CodeOpenFailed
}

// ErrHIDUnsupported is returned when the HID library cannot work in this build.
var ErrHIDUnsupported = errors.New("USB HID not supported in this build (needs cgo and Linux/macOS/Windows)")
