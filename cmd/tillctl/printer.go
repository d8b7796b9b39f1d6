package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.bug.st/serial"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
	"tillagent/internal/config"
)

func init() {
	for _, c := range []command{
		{Name: "printer status", Summary: "fiscal printer state, full status and FN status", Run: runPrinterStatus},
		{Name: "printer fn", Summary: "fiscal storage (FN) status and warnings", Run: runPrinterFN},
		{Name: "printer open-shift", Summary: "open the fiscal shift", Run: runPrinterOpenShift},
		{Name: "printer x", Summary: "print the X report (no shift close)", Run: runPrinterX},
		{Name: "printer z", Summary: "print the Z report and close the shift", Run: runPrinterZ},
		{Name: "printer test", Summary: "print a test page (-fiscal: a real test sale with bonus points)", Run: runPrinterTest},
		{Name: "printer continue", Summary: "continue printing after loading paper", Run: runPrinterContinue},
		{Name: "printer cancel", Summary: "cancel the open receipt", Run: runPrinterCancel},
		{Name: "printer doc", Summary: "look a fiscal document up in the FN by number (-fd N)", Run: runPrinterDoc},
		{Name: "printer reprint", Summary: "print a copy of the last receipt (nothing is fiscalised again)", Run: runPrinterReprint},
	} {
		register(c)
	}
}

// printerFlags are the flags every printer command takes.
type printerFlags struct {
	fs      *flag.FlagSet
	config  *string
	port    *string
	baud    *int
	verbose *bool
}

func newPrinterFlags(name string) printerFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return printerFlags{
		fs:      fs,
		config:  fs.String("config", "config.example.yaml", "configuration file"),
		port:    fs.String("port", "", "serial port, overrides printer.port (e.g. the pty of `tillctl emulate printer`)"),
		baud:    fs.Int("baud", 0, "line speed, overrides printer.baud"),
		verbose: fs.Bool("v", false, "log the protocol exchange"),
	}
}

// openPrinter opens the configured printer. With printer.type emulator and no
// -port, an in-process emulator (fresh state) is started on a pty.
func (pf printerFlags) open(ctx context.Context) (*shtrih.Driver, func(), error) {
	path := *pf.config
	if _, err := os.Stat(path); *pf.port != "" && errors.Is(err, os.ErrNotExist) {
		path = "" // a named port needs no configuration file: defaults
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	p := c.Printer
	if *pf.port != "" {
		p.Port = *pf.port
		if p.Type == "emulator" {
			p.Type = "shtrih"
		}
	}
	if *pf.baud != 0 {
		p.Baud = *pf.baud
	}
	level := slog.LevelWarn
	if *pf.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var cleanup []func()
	closeAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	switch p.Type {
	case "none":
		return nil, nil, errors.New("printer.type is none: no printer configured")
	case "emulator":
		em := emulator.New(emulator.Config{Baud: p.Baud})
		pty, err := emulator.ServePTY(ctx, em)
		if err != nil {
			return nil, nil, err
		}
		cleanup = append(cleanup, func() { pty.Close() })
		p.Port = pty.Name
		fmt.Fprintf(os.Stderr, "printer.type is emulator: using a fresh in-process emulator on %s\n", pty.Name)
	}
	port, err := serial.Open(p.Port, &serial.Mode{BaudRate: p.Baud})
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("open printer port %s: %w", p.Port, err)
	}
	cleanup = append(cleanup, func() { port.Close() })
	d := shtrih.New(port, p.Port, shtrih.Options{
		Password: uint32(p.Password), AdminPassword: uint32(p.AdminPassword),
		ByteTimeout: p.ByteTimeout, AnswerTimeout: p.AnswerTimeout, Baud: p.Baud, Logger: log,
	})
	return d, closeAll, nil
}

// withPrinter parses flags, opens the printer and runs f.
func withPrinter(ctx context.Context, name string, args []string, extra func(*flag.FlagSet), f func(context.Context, *shtrih.Driver) error) error {
	pf := newPrinterFlags(name)
	if extra != nil {
		extra(pf.fs)
	}
	if err := pf.fs.Parse(args); err != nil {
		return err
	}
	d, closeAll, err := pf.open(ctx)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err = f(ctx, d)
	if health, hint, ok := shtrih.Explain(err); ok && hint != "" {
		return fmt.Errorf("%w\nhint: %s (health code %s)", err, hint, health)
	}
	return err
}

func runPrinterStatus(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer status", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		st, err := d.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%s\nstatus: %s\n", d, st)
		if fs, err := d.FullStatus(ctx); err == nil {
			fmt.Printf("firmware %s build %d, serial %d, INN %d, last closed shift %d, clock %s\n",
				fs.Firmware, fs.Build, fs.Serial, fs.INN, fs.LastShift, fs.Date.Format("2006-01-02 15:04:05"))
		} else {
			fmt.Println("full status:", err)
		}
		return printFN(ctx, d)
	})
}

func printFN(ctx context.Context, d *shtrih.Driver) error {
	fn, err := d.FNStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("FN %s: phase %#02x, current document %#02x, shift open %v, last FD %d, FN clock %s\n",
		fn.Serial, fn.Phase, fn.Document, fn.ShiftOpen, fn.LastFD, fn.At.Format("2006-01-02 15:04"))
	for _, w := range fn.Warnings.List() {
		fmt.Printf("WARNING %s: %s\n", w.Health, w.Hint)
	}
	return nil
}

func runPrinterFN(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer fn", args, nil, printFN)
}

func runPrinterOpenShift(ctx context.Context, args []string) error {
	var cashier *string
	return withPrinter(ctx, "printer open-shift", args, func(fs *flag.FlagSet) {
		cashier = fs.String("cashier", "", "cashier name (tag 1021)")
	}, func(ctx context.Context, d *shtrih.Driver) error {
		if err := d.OpenShift(ctx, *cashier); err != nil {
			return err
		}
		fmt.Println("shift opened")
		return nil
	})
}

func runPrinterX(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer x", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		if err := d.XReport(ctx); err != nil {
			return err
		}
		fmt.Println("X report printed")
		return nil
	})
}

func runPrinterZ(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer z", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		if err := d.ZReport(ctx); err != nil {
			return err
		}
		fmt.Println("Z report printed, shift closed")
		return nil
	})
}

func runPrinterContinue(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer continue", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		return d.ContinuePrint(ctx)
	})
}

func runPrinterCancel(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer cancel", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		return d.CancelReceipt(ctx)
	})
}

var docTypes = map[byte]string{1: "registration", 11: "re-registration", 2: "shift open", 21: "settlement report",
	3: "receipt", 31: "correction receipt", 4: "BSO", 41: "correction BSO", 5: "shift close", 6: "FN close"}

func runPrinterDoc(ctx context.Context, args []string) error {
	var fd *uint
	return withPrinter(ctx, "printer doc", args, func(fs *flag.FlagSet) {
		fd = fs.Uint("fd", 0, "fiscal document number (the last one: tillctl printer fn)")
	}, func(ctx context.Context, d *shtrih.Driver) error {
		if *fd == 0 {
			return errors.New("printer doc: -fd N is required")
		}
		doc, err := d.FindDocument(ctx, uint32(*fd))
		if err != nil {
			return err
		}
		kind := docTypes[doc.Type]
		if kind == "" {
			kind = fmt.Sprintf("type %d", doc.Type)
		}
		fmt.Printf("FD %d: %s, FP %d, %s, OFD ticket %v", doc.FD, kind, doc.FP, doc.At.Format("2006-01-02 15:04"), doc.Ticket)
		if doc.Type == 3 {
			fmt.Printf(", %s, total %s", fiscal.Kind(doc.Operation), doc.Total)
		}
		fmt.Println()
		return nil
	})
}

func runPrinterReprint(ctx context.Context, args []string) error {
	return withPrinter(ctx, "printer reprint", args, nil, func(ctx context.Context, d *shtrih.Driver) error {
		if err := d.RepeatLastDocument(ctx); err != nil {
			return err
		}
		fmt.Println("copy of the last receipt printed")
		return nil
	})
}

func runPrinterTest(ctx context.Context, args []string) error {
	var fiscalSale *bool
	var mode *string
	return withPrinter(ctx, "printer test", args, func(fs *flag.FlagSet) {
		fiscalSale = fs.Bool("fiscal", false, "fiscalise a test sale (§10.3 basket, 100 points redeemed) instead of a text page")
		mode = fs.String("bonus-mode", "discount", "discount or counter_provision")
	}, func(ctx context.Context, d *shtrih.Driver) error {
		if !*fiscalSale {
			return d.PrintText(ctx, []string{"ТЕСТ ПЕЧАТИ", "tillagent " + time.Now().Format("2006-01-02 15:04"), "НЕ ФИСКАЛЬНЫЙ ДОКУМЕНТ"})
		}
		bm, err := fiscal.ParseBonusMode(*mode)
		if err != nil {
			return err
		}
		r, err := fiscal.BuildReceipt(fiscal.BonusCheck{
			ID: "test-" + time.Now().Format("150405"), Mode: bm,
			Lines: []fiscal.PlainLine{
				{Name: "Молоко", Qty: fiscal.Units(2), Price: 15000, VAT: fiscal.VAT20},
				{Name: "Хлеб", Qty: fiscal.Units(1), Price: 9990, VAT: fiscal.VAT10},
			},
			Redeemed: []fiscal.Money{7502, 2498},
			Money:    fiscal.Payments{Cash: 30000},
		})
		if err != nil {
			return err
		}
		var cp fiscal.Checkpoint
		res, err := d.PrintReceipt(ctx, r, func(_ context.Context, c fiscal.Checkpoint) error { cp = c; return nil })
		if err != nil && cp.ReceiptID != "" {
			dec, rerr := d.Resolve(ctx, cp)
			if rerr != nil {
				return fmt.Errorf("%w (resolve: %v)", err, rerr)
			}
			return fmt.Errorf("%w; after resolve the receipt is %v (FD %d)", err, dec.Outcome, dec.FD)
		}
		if err != nil {
			return err
		}
		fmt.Printf("test receipt fiscalised: FD %d, FP %d, change %s, total %s\n", res.FD, res.FP, res.Change, r.Total())
		return nil
	})
}

var _ io.Closer = serial.Port(nil)
