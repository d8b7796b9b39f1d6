// Command tillagent is the daemon on every till. For now it loads and
// validates the configuration, opens the local store (importing the demo
// replica on first start when configured), logs what it has and waits for a
// signal; the local API, devices and sync are wired in here as they land.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the Makefile with -ldflags -X main.version.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "tillagent:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tillagent:", err)
		os.Exit(1)
	}
}
