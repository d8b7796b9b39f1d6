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

func replicaImport(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replica import", flag.ContinueOnError)
	cfgPath := fs.String("config", "config.example.yaml", "configuration file (store.path, store.busy_timeout, till.till_id)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tillctl replica import [-config FILE] REPLICA.{json,yaml}")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	s, err := store.Open(ctx, store.Options{Path: cfg.Store.Path, BusyTimeout: cfg.Store.BusyTimeout, TillID: cfg.Till.TillID})
	if err != nil {
		return err
	}
	st, err := s.ImportFile(ctx, fs.Arg(0))
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
