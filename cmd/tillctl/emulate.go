package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"tillagent/driver/fiscal/emulator"
)

func init() {
	register(command{Name: "emulate printer", Summary: "run the Shtrih-M printer emulator on a pty (faults on request)", Run: runEmulatePrinter})
}

func runEmulatePrinter(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("emulate printer", flag.ContinueOnError)
	baud := fs.Int("baud", 115200, "line speed to pace the output to")
	throttle := fs.Bool("throttle", true, "pace both directions to -baud (a pty does not)")
	journal := fs.String("journal", "", "write the electronic journal (JSON) to this file after every fiscal document")
	link := fs.String("link", "", "also make a symlink with this name to the pty (e.g. /tmp/ttyFISCAL)")
	faults := fs.String("fault", "", "comma-separated faults: paper_out, cover_open, fn_warnings, or KIND@CMD one-shot (e.g. power_cut_after@FF45, bad_lrc@10, nak@FF46, paper_out@FF45)")
	drop := fs.Float64("drop", 0, "probability of dropping each byte, both directions")
	badLRC := fs.Float64("bad-lrc", 0, "probability of an answer with a bad LRC")
	nak := fs.Float64("nak", 0, "probability of NAKing a good frame")
	silence := fs.Float64("silence", 0, "probability of ignoring a frame")
	delay := fs.Duration("delay", 0, "delay every answer by this much")
	powerCut := fs.Float64("power-cut", 0, "probability of a power cut around each command")
	powerOff := fs.Duration("power-off", 2*time.Second, "how long a power cut (random or KIND@CMD) lasts")
	seed := fs.Uint64("seed", 1, "seed of the random faults")
	lastFD := fs.Uint("last-fd", 0, "last fiscal document number in the FN at start")
	zeroDenied := fs.Bool("deny-zero", false, "refuse zero-total receipts (8Eh)")
	verbose := fs.Bool("v", false, "log every frame")
	refill := fs.Duration("paper-refill", 0, "load paper again this long after it ran out (0: never), to try paper out → load → continue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var kept []emulator.Doc
	if *journal != "" {
		// The FN keeps its documents across restarts, as a device does.
		docs, err := emulator.ReadJournal(*journal)
		switch {
		case err == nil:
			kept = docs
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("-journal %s: %w", *journal, err)
		}
	}
	em := emulator.New(emulator.Config{Baud: *baud, Throttle: *throttle, JournalPath: *journal, Journal: kept, Seed: *seed,
		LastFD: uint32(*lastFD), DenyZeroReceipt: *zeroDenied, Logger: log})
	r := emulator.Random{DropIn: *drop, DropOut: *drop, BadLRC: *badLRC, NAK: *nak, Silence: *silence, PowerCut: *powerCut, PowerOffFor: *powerOff}
	if *delay > 0 {
		r.Delay, r.DelayFor = 1, *delay
	}
	em.SetRandom(r)
	for _, f := range strings.Split(*faults, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if err := applyFault(em, f, *powerOff); err != nil {
			return err
		}
	}
	p, err := emulator.ServePTY(ctx, em)
	if err != nil {
		return err
	}
	defer p.Close()
	if *refill > 0 {
		go refillPaper(ctx, em, *refill)
	}
	if *link != "" {
		os.Remove(*link)
		if err := os.Symlink(p.Name, *link); err != nil {
			return fmt.Errorf("link %s to %s: %w", *link, p.Name, err)
		}
		defer os.Remove(*link)
	}
	fmt.Printf("Shtrih-M emulator on %s (baud %d, throttle %v); try: tillctl printer status -port %s\n", p.Name, *baud, *throttle, p.Name)
	<-ctx.Done()
	return nil
}

// applyFault sets a state fault or queues a one-shot KIND@CMD fault. A
// one-shot power cut lasts powerOff: nothing could switch it back on.
func applyFault(em *emulator.Emulator, f string, powerOff time.Duration) error {
	switch f {
	case "paper_out":
		em.PaperOut()
		return nil
	case "cover_open":
		em.SetCover(true)
		return nil
	case "fn_warnings":
		em.SetFNWarnings(0x0F)
		return nil
	}
	kind, cmd, ok := strings.Cut(f, "@")
	if !ok {
		return fmt.Errorf("-fault %q: want paper_out, cover_open, fn_warnings or KIND@CMD", f)
	}
	k, found := emulator.ParseFault(kind)
	if !found {
		return fmt.Errorf("-fault %q: unknown kind %q", f, kind)
	}
	c, err := strconv.ParseUint(strings.TrimSuffix(strings.ToUpper(cmd), "H"), 16, 16)
	if err != nil {
		return errors.New("-fault " + f + ": command must be hex, e.g. FF45 or 10")
	}
	em.Inject(emulator.Fault{Kind: k, Cmd: uint16(c), Delay: 2 * time.Second, PowerOffFor: powerOff})
	return nil
}

// refillPaper plays the cashier who loads a new roll: d after the paper ran
// out, it is back.
func refillPaper(ctx context.Context, em *emulator.Emulator, d time.Duration) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var outSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			switch {
			case em.PaperPresent():
				outSince = time.Time{}
			case outSince.IsZero():
				outSince = now
			case now.Sub(outSince) >= d:
				em.LoadPaper()
				outSince = time.Time{}
			}
		}
	}
}
