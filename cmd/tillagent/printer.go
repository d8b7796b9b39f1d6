package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"go.bug.st/serial"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
	"tillagent/internal/config"
)

// openPrinter opens the configured printer. With printer.type emulator the
// built-in emulator serves an internal pty, and the real driver talks to it
// through go.bug.st/serial exactly as to a device. The returned func closes
// everything; a nil Printer means printer.type none.
func openPrinter(ctx context.Context, c config.Config, log *slog.Logger) (fiscal.Printer, func(), error) {
	p := c.Printer
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	switch p.Type {
	case "none":
		return nil, func() {}, nil
	case "emulator":
		ec := emulator.Config{Baud: p.Baud, JournalPath: c.Demo.EmulatorJournal, Logger: log.With("component", "emulator")}
		if c.Demo.EmulatorJournal != "" {
			// The emulated FN keeps its documents across restarts, as a
			// device does: FDs continue, and settling after a crash finds
			// the receipt the crash interrupted.
			docs, err := emulator.ReadJournal(c.Demo.EmulatorJournal)
			switch {
			case err == nil:
				ec.Journal = docs
			case !errors.Is(err, fs.ErrNotExist):
				return nil, nil, fmt.Errorf("printer emulator journal %s: %w", c.Demo.EmulatorJournal, err)
			}
		}
		// Its own context: on shutdown the emulator outlives the receipt
		// being printed and stops only when the printer is closed.
		pt, err := emulator.ServePTY(context.Background(), emulator.New(ec))
		if err != nil {
			return nil, nil, fmt.Errorf("printer emulator: %w", err)
		}
		closers = append(closers, func() { pt.Close() })
		p.Port = pt.Name
		log.Info("printer emulator started", "pty", pt.Name, "journal", c.Demo.EmulatorJournal)
	}
	pp := &portPrinter{port: p.Port, baud: p.Baud, log: log.With("component", "printer"), opts: shtrih.Options{
		Password: uint32(p.Password), AdminPassword: uint32(p.AdminPassword),
		ByteTimeout: p.ByteTimeout, AnswerTimeout: p.AnswerTimeout, Baud: p.Baud, Logger: log.With("component", "printer"),
	}}
	// A printer that is off at start is not a startup error: the agent
	// serves status and retries the port on every use.
	if _, err := pp.driver(); err != nil {
		log.Warn("printer not reachable yet", "err", err)
	}
	closers = append(closers, pp.close)
	return pp, closeAll, nil
}

// portPrinter is the Shtrih-M driver on a serial port that it reopens
// after the port fails (a USB adapter unplugged, a printer power-cycled):
// the next call after a failure opens the port again, at most once a
// second. A failed command is never repeated here; the sale flow decides
// with Resolve what became of a receipt.
type portPrinter struct {
	port string
	baud int
	opts shtrih.Options
	log  *slog.Logger

	mu      sync.Mutex
	sp      serial.Port
	d       *shtrih.Driver
	nextTry time.Time
}

var _ fiscal.Printer = (*portPrinter)(nil)

func (pp *portPrinter) driver() (*shtrih.Driver, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.d != nil {
		return pp.d, nil
	}
	if time.Now().Before(pp.nextTry) {
		return nil, fmt.Errorf("printer port %s: %w (retrying)", pp.port, shtrih.ErrPortClosed)
	}
	sp, err := serial.Open(pp.port, &serial.Mode{BaudRate: pp.baud})
	if err != nil {
		pp.nextTry = time.Now().Add(time.Second)
		return nil, fmt.Errorf("open printer port %s: %w (%v)", pp.port, shtrih.ErrPortClosed, err)
	}
	pp.sp, pp.d = sp, shtrih.New(sp, pp.port, pp.opts)
	pp.log.Info("printer port open", "port", pp.port)
	return pp.d, nil
}

// check drops the port after it failed, so that the next call reopens it.
func (pp *portPrinter) check(d *shtrih.Driver, err error) error {
	if err != nil && errors.Is(err, shtrih.ErrPortClosed) {
		pp.mu.Lock()
		if pp.d == d && pp.sp != nil {
			pp.sp.Close()
			pp.sp, pp.d = nil, nil
			pp.log.Warn("printer port failed; it is reopened on the next use", "port", pp.port, "err", err)
		}
		pp.mu.Unlock()
	}
	return err
}

func (pp *portPrinter) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.sp != nil {
		pp.sp.Close()
		pp.sp, pp.d = nil, nil
	}
}

// do runs f on the current driver.
func (pp *portPrinter) do(f func(*shtrih.Driver) error) error {
	d, err := pp.driver()
	if err != nil {
		return err
	}
	return pp.check(d, f(d))
}

// read is do for commands that only read the device: after a failed port
// (a printer power-cycled behind the same name) it reopens and asks once
// more, so the first status after a replug is not an error.
func (pp *portPrinter) read(f func(*shtrih.Driver) error) error {
	err := pp.do(f)
	if errors.Is(err, shtrih.ErrPortClosed) {
		pp.mu.Lock()
		pp.nextTry = time.Time{}
		pp.mu.Unlock()
		err = pp.do(f)
	}
	return err
}

func (pp *portPrinter) Status(ctx context.Context) (st fiscal.Status, err error) {
	err = pp.read(func(d *shtrih.Driver) error { st, err = d.Status(ctx); return err })
	return st, err
}

func (pp *portPrinter) FNStatus(ctx context.Context) (st fiscal.FNStatus, err error) {
	err = pp.read(func(d *shtrih.Driver) error { st, err = d.FNStatus(ctx); return err })
	return st, err
}

// Clock reads the printer's own clock (the offline age's stopwatch).
func (pp *portPrinter) Clock(ctx context.Context) (t time.Time, err error) {
	err = pp.read(func(d *shtrih.Driver) error { t, err = d.Clock(ctx); return err })
	return t, err
}

func (pp *portPrinter) OpenShift(ctx context.Context, cashier string) error {
	return pp.do(func(d *shtrih.Driver) error { return d.OpenShift(ctx, cashier) })
}

func (pp *portPrinter) PrintReceipt(ctx context.Context, r fiscal.Receipt, save func(context.Context, fiscal.Checkpoint) error) (res fiscal.Result, err error) {
	err = pp.do(func(d *shtrih.Driver) error { res, err = d.PrintReceipt(ctx, r, save); return err })
	return res, err
}

func (pp *portPrinter) Resolve(ctx context.Context, cp fiscal.Checkpoint) (dec fiscal.Decision, err error) {
	err = pp.read(func(d *shtrih.Driver) error { dec, err = d.Resolve(ctx, cp); return err })
	return dec, err
}

func (pp *portPrinter) CancelReceipt(ctx context.Context) error {
	return pp.do(func(d *shtrih.Driver) error { return d.CancelReceipt(ctx) })
}

func (pp *portPrinter) XReport(ctx context.Context) error {
	return pp.do(func(d *shtrih.Driver) error { return d.XReport(ctx) })
}

func (pp *portPrinter) ZReport(ctx context.Context) error {
	return pp.do(func(d *shtrih.Driver) error { return d.ZReport(ctx) })
}

func (pp *portPrinter) ContinuePrint(ctx context.Context) error {
	return pp.do(func(d *shtrih.Driver) error { return d.ContinuePrint(ctx) })
}

func (pp *portPrinter) PrintText(ctx context.Context, lines []string) error {
	return pp.do(func(d *shtrih.Driver) error { return d.PrintText(ctx, lines) })
}
