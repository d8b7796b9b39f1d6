package main

import (
	"context"
	"sync"

	"tillagent/internal/api"
	"tillagent/internal/store"
)

// perScrape shares one reading among the gauges built on it, one reading
// a scrape rather than one a gauge: Metrics.Write asks every gauge with a
// ctx of that scrape alone. gauge(f) is a gauge's read: f of the reading.
func perScrape[T any](read func(context.Context) (T, error)) (gauge func(f func(T) float64) func(context.Context) (float64, error)) {
	var mu sync.Mutex
	var scrape context.Context
	var v T
	var err error
	return func(f func(T) float64) func(context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			mu.Lock()
			defer mu.Unlock()
			if ctx != scrape {
				scrape = ctx
				v, err = read(ctx)
			}
			if err != nil {
				return 0, err
			}
			return f(v), nil
		}
	}
}

// diskGauges puts the till database's size and the free disk beside it on
// /metrics: the till keeps its history (docs/api.md, "What a till keeps").
func diskGauges(m *api.Metrics, st *store.Store) {
	read := perScrape(func(context.Context) (store.Disk, error) { return st.Disk() })
	m.Gauge("tillagent_store_db_bytes", "Bytes the till's database files take (main file, WAL, shared memory): the till keeps its history.",
		read(func(d store.Disk) float64 { return float64(d.DBBytes) }))
	m.Gauge("tillagent_store_disk_free_bytes", "Bytes left on the file system holding the till's database.",
		read(func(d store.Disk) float64 { return float64(d.FreeBytes) }))
}
