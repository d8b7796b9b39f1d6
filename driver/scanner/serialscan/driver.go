// Package serialscan reads RS-232 and USB-CDC barcode scanners through
// go.bug.st/serial: the configured port (a stable /dev/serial/by-id name
// works, and is re-resolved on every reopen), speed, and framing by CR, LF,
// CR LF, STX/ETX or silence. AIM prefixes are split off by the scanner
// package. One goroutine owns each port; cancelling ctx closes it, which
// wakes the blocked read.
package serialscan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"go.bug.st/serial"

	"tillagent/driver/scanner"
)

// Config is one serial scanner.
type Config struct {
	Name    string
	Port    string
	Baud    int // default 9600; ignored by USB-CDC devices but set anyway
	Framer  FramerConfig
	Backoff scanner.Backoff
	Log     *slog.Logger
}

// Driver is a supervised serial scanner; it implements scanner.Driver.
type Driver struct {
	cfg  Config
	poll time.Duration
}

var _ scanner.Driver = (*Driver)(nil)

func New(cfg Config) *Driver {
	if cfg.Baud <= 0 {
		cfg.Baud = 9600
	}
	if cfg.Framer.Gap <= 0 {
		cfg.Framer.Gap = DefaultGap(cfg.Baud)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// The read timeout is how often silence is noticed; a quarter of the
	// gap keeps a gap-ended scan within 1.25 gaps of its last byte. Data
	// itself wakes the read at once, whatever the timeout.
	poll := min(max(cfg.Framer.Gap/4, 5*time.Millisecond), 50*time.Millisecond)
	return &Driver{cfg: cfg, poll: poll}
}

func (d *Driver) Name() string { return d.cfg.Name }
func (d *Driver) String() string {
	return fmt.Sprintf("serial scanner %s on %s", d.cfg.Name, d.cfg.Port)
}

// Run reads until ctx ends, reopening the port after every failure.
func (d *Driver) Run(ctx context.Context, out chan<- scanner.Scan, report func(scanner.Health)) {
	log := d.cfg.Log.With("device", d.cfg.Name, "port", d.cfg.Port)
	scanner.Supervise(ctx, d.cfg.Name, d.cfg.Backoff, log, report, func(ctx context.Context, up func()) error {
		return d.session(ctx, log, out, report, up)
	})
}

// openError maps go.bug.st/serial's error codes to health codes.
func openError(port string, err error) error {
	de := &scanner.DeviceError{Op: "open", Device: port, Code: scanner.CodeOpenFailed, Err: err}
	var pe *serial.PortError
	switch {
	case errors.As(err, &pe):
		switch pe.Code() {
		case serial.PortNotFound:
			de.Code = scanner.CodeNotFound
		case serial.PermissionDenied:
			de.Code, de.Hint = scanner.CodePermission, "add the service user to group dialout, see deploy/udev"
		case serial.PortBusy:
			de.Code, de.Hint = scanner.CodeBusy, "another process holds the port (ModemManager? see deploy/udev)"
		}
	case errors.Is(err, fs.ErrNotExist):
		de.Code = scanner.CodeNotFound
	case errors.Is(err, fs.ErrPermission):
		de.Code = scanner.CodePermission
	}
	return de
}

func (d *Driver) session(ctx context.Context, log *slog.Logger, out chan<- scanner.Scan, report func(scanner.Health), up func()) error {
	port, err := serial.Open(d.cfg.Port, &serial.Mode{BaudRate: d.cfg.Baud})
	if err != nil {
		return openError(d.cfg.Port, err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(d.poll); err != nil {
		return &scanner.DeviceError{Op: "configure", Device: d.cfg.Port, Code: scanner.CodeOpenFailed, Err: err}
	}
	// Close is safe from another goroutine and wakes a blocked Read.
	stop := context.AfterFunc(ctx, func() { port.Close() })
	defer stop()
	up()

	fr := NewFramer(d.cfg.Framer)
	buf := make([]byte, 4096)
	for {
		n, err := port.Read(buf)
		now := time.Now()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return &scanner.DeviceError{Op: "read", Device: d.cfg.Port, Code: scanner.CodeDisconnected, Err: err}
		}
		if n == 0 {
			scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportSerial, fr.Flush(now), out, report)
			continue
		}
		scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportSerial, fr.Feed(buf[:n], now), out, report)
	}
}
