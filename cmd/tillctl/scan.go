package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/scanconf"
	"tillagent/internal/config"
)

func init() {
	register(command{Name: "scan", Summary: "show scans live from configured or named scanners until Ctrl-C", Run: runScan})
}

// noKeys: tillctl does not open the replica, so signed tokens are parsed and
// shown but cannot be verified here.
type noKeys struct{}

func (noKeys) CardKey(context.Context, uint16) (classify.Key, error) {
	return classify.Key{}, errors.New("tillctl scan does not read the replica's card keys")
}

func runScan(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	path := fs.String("config", "config.example.yaml", "configuration file (scanners and classify sections)")
	name := fs.String("name", "", "only the configured scanner with this name")
	port := fs.String("port", "", "read a serial scanner on this port instead of the configured ones")
	framing := fs.String("framing", "cr", "with -port: cr, lf, crlf, stx_etx or gap")
	baud := fs.Int("baud", 9600, "with -port: line speed")
	gap := fs.Duration("gap", 0, "with -port: silence that ends (gap) or discards (others) a message; 0: default")
	debug := fs.Bool("v", false, "log driver details")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := config.Load(*path)
	if err != nil {
		return err
	}
	var cfgs []config.Scanner
	switch {
	case *port != "":
		s := config.Scanner{Name: *port, Type: "serial", Port: *port, Baud: *baud, Framing: *framing, Gap: *gap}
		c.Scanners = []config.Scanner{s}
		if err := c.Validate(); err != nil {
			return err
		}
		cfgs = c.Scanners
	case *name != "":
		for _, s := range c.Scanners {
			if s.Name == *name {
				cfgs = append(cfgs, s)
			}
		}
		if len(cfgs) == 0 {
			return fmt.Errorf("%s: no scanner named %q", *path, *name)
		}
	default:
		cfgs = c.Scanners
		if len(cfgs) == 0 {
			return fmt.Errorf("%s: no scanners configured; use -port /dev/ttyACM0 or a config with scanners", *path)
		}
	}
	level := slog.LevelError // health changes are printed below; -v adds the driver log
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cl := scanconf.Classifier(c.Classify, noKeys{}, nil)
	health := func(h scanner.Health) {
		fmt.Fprintf(os.Stderr, "%s health %s\n", h.At.Format("15:04:05.000"), h)
	}
	fmt.Fprintf(os.Stderr, "reading %d scanner(s); Ctrl-C to stop\n", len(cfgs))
	for s := range scanner.Stream(ctx, c.Classify.DuplicateWindow, health, scanconf.Drivers(cfgs, log)...) {
		r := cl.Classify(ctx, s)
		printScan(s, r)
	}
	return nil
}

func printScan(s scanner.Scan, r classify.Result) {
	fmt.Printf("%s %-8s %-12s %-14s upos=%-3d aim=%-3s %q\n", s.At.Format("15:04:05.000"), s.Device, s.Transport,
		s.Symbology, s.Symbology.UPOS(), orDash(s.AIM), scanner.Printable(s.Raw))
	detail := ""
	switch {
	case r.Card != "":
		detail = "card " + r.Card
	case r.Code != "":
		detail = "code " + scanner.Printable([]byte(r.Code))
	}
	if r.GS1 {
		detail += " (gs1)"
	}
	if r.Reason != "" {
		detail += fmt.Sprintf(" reason=%s: %v", r.Reason, r.Err)
	}
	if f := s.Flags.String(); f != "" {
		detail += " flags=" + f
	}
	if r.Duplicate {
		detail += " duplicate"
	}
	fmt.Printf("             -> %s %s  (latency %s)\n", r.Kind, detail, time.Since(s.At).Round(time.Microsecond))
}
