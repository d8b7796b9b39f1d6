package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"tillagent/internal/config"
	"tillagent/internal/store"
)

// Main is the daemon's wiring, built so that tests can drive it in-process:
// set Config (or ConfigPath), call Run with a context, cancel to stop.
type Main struct {
	ConfigPath string
	Config     *config.Config // set directly by tests; loaded from ConfigPath otherwise
	LogOutput  io.Writer

	// Ready, when not nil, is closed once the agent has started.
	Ready chan struct{}
}

// NewMain returns a Main with the default configuration path.
func NewMain() *Main {
	return &Main{ConfigPath: "config.example.yaml", LogOutput: os.Stderr}
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("tillagent", flag.ContinueOnError)
	fs.StringVar(&m.ConfigPath, "config", m.ConfigPath, "configuration file (YAML; TILLAGENT_* environment variables override it)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("tillagent", version)
		os.Exit(0)
	}
	return nil
}

// Run starts the agent and blocks until ctx is cancelled. Startup errors
// (a bad config, a store whose durability pragmas are off) are returned
// before anything is served.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	if cfg == nil {
		c, err := config.Load(m.ConfigPath)
		if err != nil {
			return err
		}
		cfg = &c
	}
	log := newLogger(m.LogOutput, cfg.Log)
	log.Info("starting", "version", version, "config", cfg.File, "till", cfg.Till.TillID, "store", cfg.Till.StoreID)

	if err := os.MkdirAll(filepath.Dir(cfg.Store.Path), 0o750); err != nil {
		return fmt.Errorf("create store directory: %w", err)
	}
	st, err := store.Open(ctx, store.Options{
		Path:        cfg.Store.Path,
		BusyTimeout: cfg.Store.BusyTimeout,
		TillID:      cfg.Till.TillID,
		Logger:      log.With("component", "store"),
	})
	if err != nil {
		return err
	}
	defer st.Close()

	imported, err := st.EnsureDemo(ctx, cfg.Store.DemoReplica)
	if err != nil {
		return fmt.Errorf("import demo replica %s: %w", cfg.Store.DemoReplica, err)
	}
	if imported {
		log.Info("demo replica imported", "file", cfg.Store.DemoReplica, "path", cfg.Store.Path)
	}
	has, err := st.HasReplica(ctx)
	if err != nil {
		return err
	}
	if !has {
		log.Warn("store holds no replica yet: import one with `tillctl replica import FILE`", "path", cfg.Store.Path)
	}
	log.Info("ready", "store", cfg.Store.Path, "printer", cfg.Printer.Type, "scanners", len(cfg.Scanners))
	if m.Ready != nil {
		close(m.Ready)
	}

	<-ctx.Done()
	log.Info("stopping")
	return nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
