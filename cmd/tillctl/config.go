package main

import (
	"context"
	"flag"
	"fmt"

	"tillagent/internal/config"
)

func init() {
	register(command{Name: "config check", Summary: "load and validate a configuration file", Run: runConfigCheck})
}

func runConfigCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	path := fs.String("config", "config.example.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok (till %s of store %s, store %s, printer %s, %d scanner(s))\n",
		*path, c.Till.TillID, c.Till.StoreID, c.Store.Path, c.Printer.Type, len(c.Scanners))
	return nil
}
