package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"tillagent/internal/config"
)

func init() {
	register(command{Name: "config check", Summary: "load and validate a configuration file", Run: runConfigCheck})
}

func runConfigCheck(ctx context.Context, args []string) error {
	return configCheck(ctx, args, os.Stdout)
}

func configCheck(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	path := fs.String("config", "config.example.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(fs.Output(), "usage: tillctl config check [-config FILE]")
		return errUsage
	}
	c, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: ok (till %s of store %s, store %s, printer %s, %d scanner(s))\n",
		*path, c.Till.TillID, c.Till.StoreID, c.Store.Path, c.Printer.Type, len(c.Scanners))
	if c.Sync.Enabled && c.Store.DemoReplica != "" {
		// A warning, not an error: the agent skips the file and starts.
		fmt.Fprintf(out, "warning: store.demo_replica (%s) is ignored: sync.enabled is on, so the replica comes from head office only; clear store.demo_replica\n",
			c.Store.DemoReplica)
	}
	return nil
}
