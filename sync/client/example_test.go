package client_test

import (
	"context"
	"log/slog"
	"time"

	"tillagent/internal/config"
	"tillagent/internal/store"
	"tillagent/sync/client"
)

// How tillagent starts the loop from its configuration (sync.* keys) and the
// store it already has open.
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.Load("config.yaml")
	if err != nil || !cfg.Sync.Enabled {
		return
	}
	st, err := store.Open(ctx, store.Options{Path: cfg.Store.Path, TillID: cfg.Till.TillID, BusyTimeout: cfg.Store.BusyTimeout})
	if err != nil {
		return
	}
	defer st.Close()
	secret, err := cfg.Sync.SecretValue()
	if err != nil {
		return
	}
	hc, err := client.HTTPClient(client.TLSFiles{CA: cfg.Sync.CAFile, Cert: cfg.Sync.CertFile, Key: cfg.Sync.KeyFile})
	if err != nil {
		return
	}
	c, err := client.New(client.Options{
		URL: cfg.Sync.URL, TillID: cfg.Till.TillID, StoreID: cfg.Till.StoreID, Secret: secret, CertAuth: cfg.Sync.CertFile != "",
		Store: st, HTTPClient: hc, Logger: slog.Default(),
		BatchSize: cfg.Sync.BatchSize, Interval: cfg.Sync.Interval,
		BackoffMin: cfg.Sync.BackoffMin, BackoffMax: cfg.Sync.BackoffMax, RequestTimeout: cfg.Sync.RequestTimeout,
		SnapshotPage: cfg.Sync.PageSize, DeltaPage: cfg.Sync.PageSize,
	})
	if err != nil {
		return
	}
	go c.Run(ctx)                                                     // returns when ctx ends
	_ = c.Status()                                                    // for /v1/status: {"sync": c.Status()}
	_ = c.SyncNow(ctx)                                                // for tillctl sync now
	_, _, _ = st.OfflineRedeemLimit(ctx, "2900000000018", time.Now()) // the sale flow, before redeeming
}
