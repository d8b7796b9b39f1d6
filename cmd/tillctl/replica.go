package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"tillagent/internal/config"
	"tillagent/internal/store"
)

func init() {
	register(command{Name: "replica import", Summary: "load a replica file (JSON or YAML) into the store", Run: runReplicaImport})
	register(command{Name: "replica check", Summary: "parse and validate a replica file without a store", Run: runReplicaCheck})
}

func runReplicaImport(ctx context.Context, args []string) error {
	return replicaImport(ctx, args, os.Stdout)
}

// importFlags are replica import's flags; -h prints them.
func importFlags(cfgPath *string, force *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("replica import", flag.ContinueOnError)
	fs.StringVar(cfgPath, "config", "config.example.yaml", "configuration file (store.path, store.busy_timeout, till.till_id, sync.enabled)")
	fs.BoolVar(force, "force", false, "import into a till that syncs with head office (sync.enabled, or a feed in its store) all the same:\n"+
		"head office does not know the imported records, so no feed or feed reset removes them and points spent from them become debt at head office")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tillctl replica import [-config FILE] [-force] REPLICA.{json,yaml}\n\n"+
			"Loads a replica file into the till's store (a till without sync, the demo, a lab).\n"+
			"A till that syncs gets its replica from head office: this is refused there unless -force.")
		fs.PrintDefaults()
	}
	return fs
}

func replicaImport(ctx context.Context, args []string, out io.Writer) error {
	var cfgPath string
	var force bool
	fs := importFlags(&cfgPath, &force)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	// On a till that syncs, the replica is head office's: records imported
	// here are unknown there, so no feed or feed reset takes them away.
	refuse := func(why string) error {
		return fmt.Errorf("replica import %s into %s refused: till %s syncs with head office (%s), and its replica belongs to head office: "+
			"records imported here are unknown there, no feed or feed reset removes them, and points spent from them become debt at head office. "+
			"Change the data at head office (headoffice import) and let the till sync, or reload this till's replica from head office with "+
			"`headoffice reset-feed -till %s`; -force imports anyway", fs.Arg(0), cfg.Store.Path, cfg.Till.TillID, why, cfg.Till.TillID)
	}
	if cfg.Sync.Enabled && !force {
		return refuse("sync.enabled is true in " + cfgPath)
	}
	s, err := store.Open(ctx, store.Options{Path: cfg.Store.Path, BusyTimeout: cfg.Store.BusyTimeout, TillID: cfg.Till.TillID})
	if err != nil {
		return err
	}
	var st store.ImportStats
	why, err := s.HeadOfficeFeeds(ctx)
	switch {
	case err != nil:
	case why != "" && !force:
		err = refuse("its store holds " + why)
	default:
		st, err = s.ImportFile(ctx, fs.Arg(0))
	}
	if cerr := s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: imported into %s: %s\n", fs.Arg(0), cfg.Store.Path, st)
	return nil
}

func runReplicaCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replica check", flag.ContinueOnError)
	delta := fs.Bool("delta", false, "the file is a delta: references may point at records already on the till, so only check the records themselves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: tillctl replica check [-delta] REPLICA.{json,yaml}")
		return errUsage
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	r, err := store.ParseReplicaFile(fs.Arg(0), data)
	if err != nil {
		return err
	}
	// Without a store, references can only be checked within the file.
	if !*delta {
		if err := r.Validate(nil); err != nil {
			return errors.Join(fmt.Errorf("%s: references checked within the file (use -delta for a partial file)", fs.Arg(0)), err)
		}
	}
	fmt.Printf("%s: ok (%d programs, %d products, %d cards, %d lots)\n", fs.Arg(0), len(r.Programs), len(r.Products), len(r.Cards), len(r.Lots))
	return nil
}
