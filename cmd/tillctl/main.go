// Command tillctl is the store technician's and support's tool: it checks the
// configuration, loads replicas, quotes checks against the rules and talks to
// the devices. Each command lives in its own file and registers itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one tillctl verb. Run gets the arguments after the verb's name.
type command struct {
	Name    string // may contain a space: "replica import"
	Summary string
	Run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.Name]; dup {
		panic("tillctl: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// errUsage makes main print the usage and exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.As(err, new(*unreachableError)):
		fmt.Fprintln(os.Stderr, "tillctl:", err)
		os.Exit(exitUnreachable)
	default:
		fmt.Fprintln(os.Stderr, "tillctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	// Longest match first, so "replica import" wins over a future "replica".
	for n := min(2, len(args)); n >= 1; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c.Run(ctx, args[n:])
		}
	}
	usage()
	return errUsage
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: tillctl COMMAND [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-18s %s\n", n, commands[n].Summary)
	}
}
