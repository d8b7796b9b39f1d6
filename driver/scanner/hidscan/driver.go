// Package hidscan reads USB HID barcode scanners: keyboard-wedge (boot
// keyboard reports decoded with a fixed US usage table, independent of the
// desktop's layout) and HID POS (usage page 0x8C, multi-report reassembly).
// One goroutine owns each device: it opens, reads, flushes on silence and
// closes, because the HID library must not close under a blocked reader.
package hidscan

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"tillagent/driver/scanner"
)

// Config is one HID scanner.
type Config struct {
	Name      string
	VendorID  uint16
	ProductID uint16
	Serial    string // optional: pick this unit when several of one model are plugged in
	// Interface selects the USB interface of a composite scanner; -1 picks
	// HID POS over keyboard by probing sysfs, else the lowest number.
	Interface int
	Wedge     WedgeConfig
	POS       POSConfig // Layout defaults by vendor (LayoutFor)
	Bus       Bus       // nil: SystemBus
	SysfsRoot string    // "" : "/sys"
	Backoff   scanner.Backoff
	Log       *slog.Logger
	// PollMS bounds each read so the owner goroutine sees ctx and gap ends
	// promptly. Default 50.
	PollMS int
}

// Driver is a supervised HID scanner; it implements scanner.Driver.
type Driver struct {
	cfg Config
	// formats caches the HID POS report format parsed from each interface's
	// descriptor: sysfs hides the descriptor while we hold the interface.
	formats map[string]ReportFormat
}

var _ scanner.Driver = (*Driver)(nil)

func New(cfg Config) *Driver {
	if cfg.Bus == nil {
		cfg.Bus = SystemBus{}
	}
	if cfg.SysfsRoot == "" {
		cfg.SysfsRoot = "/sys"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Backoff.Min <= 0 {
		// Enumeration touches every HID device on the bus: not more than
		// about once a second while a scanner is missing.
		cfg.Backoff = scanner.Backoff{Min: time.Second, Max: 5 * time.Second}
	}
	if cfg.PollMS <= 0 {
		cfg.PollMS = 50
	}
	return &Driver{cfg: cfg, formats: map[string]ReportFormat{}}
}

func (d *Driver) Name() string { return d.cfg.Name }

func (d *Driver) String() string {
	return fmt.Sprintf("hid scanner %s (%04x:%04x)", d.cfg.Name, d.cfg.VendorID, d.cfg.ProductID)
}

// Run reads until ctx ends, reopening after every failure.
func (d *Driver) Run(ctx context.Context, out chan<- scanner.Scan, report func(scanner.Health)) {
	log := d.cfg.Log.With("device", d.cfg.Name)
	scanner.Supervise(ctx, d.cfg.Name, d.cfg.Backoff, log, report, func(ctx context.Context, up func()) error {
		return d.session(ctx, log, out, report, up)
	})
}

func (d *Driver) id() string { return fmt.Sprintf("%04x:%04x", d.cfg.VendorID, d.cfg.ProductID) }

// pick chooses the interface to open among a device's HID interfaces.
func (d *Driver) pick(infos []Info) (Info, Kind, bool) {
	infos = slices.DeleteFunc(slices.Clone(infos), func(i Info) bool {
		return (d.cfg.Serial != "" && i.Serial != d.cfg.Serial) ||
			(d.cfg.Interface >= 0 && i.Interface != d.cfg.Interface)
	})
	if len(infos) == 0 {
		return Info{}, KindUnknown, false
	}
	kinds := make(map[string]Kind, len(infos))
	for _, i := range infos {
		k, desc := Probe(d.cfg.SysfsRoot, i.Path)
		kinds[i.Path] = k
		if f, err := ParseReportDescriptor(desc); k == KindPOS && err == nil {
			d.formats[i.Path] = f
		}
	}
	rank := func(k Kind) int { return [...]int{2, 1, 0}[k] } // POS, keyboard, unknown
	slices.SortStableFunc(infos, func(a, b Info) int {
		if c := cmp.Compare(rank(kinds[a.Path]), rank(kinds[b.Path])); c != 0 {
			return c
		}
		return cmp.Compare(a.Interface, b.Interface)
	})
	return infos[0], kinds[infos[0].Path], true
}

func (d *Driver) session(ctx context.Context, log *slog.Logger, out chan<- scanner.Scan, report func(scanner.Health), up func()) error {
	bus := d.cfg.Bus
	if !bus.Supported() {
		return &scanner.DeviceError{Op: "open", Device: d.id(), Code: scanner.CodeHIDUnsupported, Err: scanner.ErrHIDUnsupported,
			Hint: "build with CGO_ENABLED=1 and gcc, or use a serial/USB-CDC scanner"}
	}
	infos, err := bus.Enumerate(d.cfg.VendorID, d.cfg.ProductID)
	if err != nil {
		return &scanner.DeviceError{Op: "enumerate", Device: d.id(), Code: scanner.CodeOpenFailed, Err: err}
	}
	info, kind, ok := d.pick(infos)
	if !ok {
		return &scanner.DeviceError{Op: "open", Device: d.id(), Code: scanner.CodeNotFound, Err: fmt.Errorf("no matching HID interface (%d found)", len(infos))}
	}
	dev, err := bus.Open(info)
	if err != nil {
		de := &scanner.DeviceError{Op: "open", Device: d.id() + " " + info.Path, Code: scanner.CodeOpenFailed, Err: err,
			Hint: "another process may hold it; check deploy/udev rules for /dev/bus/usb write access"}
		if info.Product == "" && info.Serial == "" && info.Manufacturer == "" {
			// hidapi returns empty strings when it may not open the device node.
			de.Code, de.Hint = scanner.CodePermission, "no write access to /dev/bus/usb: install deploy/udev/70-tillagent-scanners.rules and replug"
		}
		return de
	}
	defer dev.Close() // same goroutine as the reads: see Device
	up()
	log.Info("hid scanner open", "path", info.Path, "interface", info.Interface, "kind", kind, "product", info.Product)

	wedge := NewWedgeDecoder(d.cfg.Wedge)
	posCfg := d.cfg.POS
	if posCfg.Layout == LayoutAuto {
		posCfg.Layout = LayoutFor(info.VendorID)
	}
	if f, ok := d.formats[info.Path]; ok && posCfg.Format == nil {
		posCfg.Format = &f
		log.Info("hid pos report format from descriptor", "report_id", f.ReportID, "size", f.Size, "data_offset", f.DataOff)
	}
	pos := NewPOSDecoder(posCfg)
	buf := make([]byte, 64)
	for ctx.Err() == nil {
		n, err := dev.ReadTimeout(buf, d.cfg.PollMS)
		now := time.Now()
		if err != nil {
			return &scanner.DeviceError{Op: "read", Device: d.id() + " " + info.Path, Code: scanner.CodeDisconnected, Err: err}
		}
		switch {
		case n == 0:
			scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportHIDKeyboard, wedge.Flush(now), out, report)
			scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportHIDPOS, pos.Flush(now), out, report)
		case pos.Accepts(buf[:n]):
			scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportHIDPOS, pos.Feed(buf[:n], now), out, report)
		default:
			scanner.Deliver(ctx, log, d.cfg.Name, scanner.TransportHIDKeyboard, wedge.Feed(buf[:n], now), out, report)
		}
	}
	return ctx.Err()
}
