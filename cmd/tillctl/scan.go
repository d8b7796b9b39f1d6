package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/scanconf"
	"tillagent/internal/config"
	"tillagent/internal/store"
)

func init() {
	register(command{Name: "scan", Summary: "show scans live from configured or named scanners until Ctrl-C", Run: runScan})
}

// noKeys stands in when the till's store cannot be opened: signed tokens
// are parsed and shown, and every one is rejected as token_key_lookup_failed
// with why stated.
type noKeys struct{ why string }

func (k noKeys) CardKey(_ context.Context, id uint16) (classify.Key, error) {
	return classify.Key{}, fmt.Errorf("no card keys (%s)", k.why)
}

// cardKeys opens the till's store (config store.path) as the source of the
// issuer keys that verify signed tokens, so a scan shows what the agent
// would decide. It never creates a store: when the file is missing or will
// not open, it warns on w and returns noKeys, since seeing scans is still
// worth it. The store is only read (store.Open may apply pending schema
// migrations, as the agent would on its next start). The closer is never nil.
func cardKeys(ctx context.Context, c *config.Config, w io.Writer) (classify.KeySource, func() error) {
	path := c.Store.Path
	fallback := func(why string) (classify.KeySource, func() error) {
		fmt.Fprintf(w, "warning: %s; signed LC1: tokens cannot be verified and will show token_key_lookup_failed\n", why)
		return noKeys{why: why}, func() error { return nil }
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fallback(fmt.Sprintf("store %s does not exist (import a replica first: tillctl replica import)", path))
	} else if err != nil {
		return fallback(fmt.Sprintf("store %s: %v", path, err))
	}
	s, err := store.Open(ctx, store.Options{Path: path, BusyTimeout: c.Store.BusyTimeout, TillID: c.Till.TillID})
	if err != nil {
		return fallback(fmt.Sprintf("open store %s: %v", path, err))
	}
	fmt.Fprintf(w, "verifying signed tokens with the card keys in %s\n", path)
	return s, s.Close
}

func runScan(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	path := fs.String("config", "config.example.yaml", "configuration file (scanners, classify, and store.path for the card keys)")
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
	keys, closeKeys := cardKeys(ctx, &c, os.Stderr)
	defer closeKeys()
	cl := scanconf.Classifier(c.Classify, keys, nil)
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
