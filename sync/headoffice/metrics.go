package headoffice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"tillagent/internal/metrics"
	"tillagent/sync/wire"
)

// What head office counts for its operators (docs/sync.md, "Watching head
// office"): requests, journal entries by result, the pool, the database's
// own counts that alert someone (entries waiting behind a gap, open
// conflicts), and the expiry schedule.
var metricHelp = map[string]string{
	"headoffice_http_requests_total":           "Requests by route (the endpoint's pattern; unmatched for none) and status.",
	"headoffice_http_request_duration_seconds": "Time to answer a request, by route.",
	"headoffice_journal_entries_total":         "Journal entries pushed by tills, by result (applied, duplicate, conflict, rejected).",
	"headoffice_maintain_runs_total":           "Expiry runs (scheduled or ERP's POST /v1/erp/maintain) by result (ok, failed).",
	"headoffice_changes_pruned_total":          "Change log rows older than -change-retention deleted by the expiry runs.",
}

func newMetrics(s *Server) *metrics.Registry {
	m := metrics.New(metricHelp)
	atomicCounter := func(name, help string, v interface{ Load() int64 }) {
		m.CounterFunc(name, help, func(context.Context) (float64, error) { return float64(v.Load()), nil })
	}
	atomicCounter("headoffice_ingest_retries_total", "Ingest transactions run again after a deadlock or a serialization failure.", &s.retries)
	atomicCounter("headoffice_lot_rereads_total", "Ingests folded again reading every lot of their cards (a created lot existed).", &s.rereads)
	atomicCounter("headoffice_db_connections_lost_total", "Connections to PostgreSQL found gone (a restart, a failover, a cut): the pool reconnected.", &s.lost)
	pool := func(name, help string, f func() float64) {
		m.Gauge(name, help, func(context.Context) (float64, error) { return f(), nil })
	}
	pool("headoffice_db_pool_max_conns", "The most connections the pool opens.", func() float64 { return float64(s.db.Stat().MaxConns()) })
	pool("headoffice_db_pool_acquired_conns", "Connections in use by requests.", func() float64 { return float64(s.db.Stat().AcquiredConns()) })
	pool("headoffice_db_pool_idle_conns", "Connections open and idle.", func() float64 { return float64(s.db.Stat().IdleConns()) })
	m.CounterFunc("headoffice_db_pool_waited_acquires_total", "Requests that waited for a connection (all in use): many mean the pool is too small (pool_max_conns).",
		func(context.Context) (float64, error) { return float64(s.db.Stat().EmptyAcquireCount()), nil })
	m.CounterFunc("headoffice_db_pool_acquire_seconds_total", "Time requests spent getting a connection.",
		func(context.Context) (float64, error) { return s.db.Stat().AcquireDuration().Seconds(), nil })
	a := s.admission
	atomicCounter("headoffice_till_requests_shed_total", "Till pushes and feed pages answered 503 with Retry-After: no place free within -till-queue-wait (-max-till-requests).", &a.shed)
	m.Gauge("headoffice_till_requests_in_flight", "Till pushes and feed pages being worked on (not counted without a bound).", func(context.Context) (float64, error) { return float64(len(a.slots)), nil })
	m.Gauge("headoffice_till_requests_waiting", "Till pushes and feed pages waiting for a place.", func(context.Context) (float64, error) { return float64(a.waiting.Load()), nil })
	m.Gauge("headoffice_till_requests_limit", "The most till pushes and feed pages worked on at once (-max-till-requests; 0: no bound).", func(context.Context) (float64, error) { return float64(cap(a.slots)), nil })
	if c := s.pages; c != nil {
		atomicCounter("headoffice_snapshot_cache_hits_total", "First-load pages of \"all\" stores given from the pages cached for other tills (-snapshot-cache-mb).", &c.hits)
		atomicCounter("headoffice_snapshot_cache_misses_total", "First-load pages of \"all\" stores read whole: none cached, or too old (-snapshot-cache-age).", &c.misses)
		atomicCounter("headoffice_snapshot_cache_packed_total", "Cached first-load pages sent from their encoding compressed once (the page whole, none of its cards read again).", &c.packs)
		atomicCounter("headoffice_snapshot_cache_cards_reread_total", "Cards of cached pages read again: changed since the page was cached.", &c.refreshed)
		m.Gauge("headoffice_snapshot_cache_bytes", "About the memory the cached first-load pages hold.", func(context.Context) (float64, error) { return float64(c.heldBytes()), nil })
	}
	m.Gauge("headoffice_clock_skew_seconds", "Head office's clock minus the database server's, at start and at the last expiry run.",
		func(context.Context) (float64, error) { return time.Duration(s.clockSkew.Load()).Seconds(), nil })
	counts := s.scrapeCounts()
	for _, g := range []struct {
		name, help string
		v          func(*dbCounts) float64
	}{
		{"headoffice_journal_waiting_entries", "Entries stored but not folded: waiting behind a gap in their till's chain (GET /v1/erp/reports/tills).", func(c *dbCounts) float64 { return float64(c.waiting) }},
		{"headoffice_journal_waiting_oldest_seconds", "How long the oldest entry waiting behind a gap has waited (0: none): a gap that does not fill is a till's lost batch.", func(c *dbCounts) float64 { return c.waitedSeconds }},
		{"headoffice_journal_unknown_card_entries", "Entries folded on cards head office did not hold, applied to no card (GET /v1/erp/reports/unknown-cards).", func(c *dbCounts) float64 { return float64(c.unknownCard) }},
		{"headoffice_retake_kept_entries", "Entries of ERP's export retake-journal kept for tills head office did not know, to be taken when each is admitted or enrolled again (a till that will not sync again: enrol it, which takes them).", func(c *dbCounts) float64 { return float64(c.kept) }},
		{"headoffice_conflicts_open", "Till entries head office holds with other content, not settled (GET /v1/erp/conflicts).", func(c *dbCounts) float64 { return float64(c.conflicts) }},
		{"headoffice_tills_enrolled", "Tills enrolled and not retired.", func(c *dbCounts) float64 { return float64(c.tills) }},
		{"headoffice_tills_retired", "Tills retired.", func(c *dbCounts) float64 { return float64(c.retired) }},
		{"headoffice_tills_silent_hour", "Tills not retired last heard from over an hour ago (GET /v1/erp/reports/tills: last_seen_at).", func(c *dbCounts) float64 { return float64(c.silentHour) }},
		{"headoffice_tills_silent_day", "Tills not retired last heard from over a day ago: offline, or their sync broken.", func(c *dbCounts) float64 { return float64(c.silentDay) }},
		{"headoffice_tills_never_seen", "Tills enrolled, not retired, never heard from (not installed yet, or the secret never reached them).", func(c *dbCounts) float64 { return float64(c.neverSeen) }},
	} {
		m.Gauge(g.name, g.help, func(ctx context.Context) (float64, error) {
			c, err := counts(ctx)
			if err != nil {
				return 0, err
			}
			return g.v(c), nil
		})
	}
	m.Gauge("headoffice_maintain_last_ok_timestamp_seconds", "When the last expiry run ended well (Unix time; 0: none since start).",
		func(context.Context) (float64, error) { return float64(s.maintainOK.Load()) / 1e3, nil })
	return m
}

// dbCounts are the database's counts a scrape shows, read once a scrape.
type dbCounts struct {
	waiting, conflicts, tills, retired int64
	unknownCard                        int64   // entries folded on cards head office lacked
	kept                               int64   // retake_kept's entries
	silentHour, silentDay, neverSeen   int64   // tills not retired, last heard from over an hour, a day ago, never
	waitedSeconds                      float64 // since the oldest waiting entry came
}

// scrapeCounts reads dbCounts at most once per scrape (the registry gives
// each scrape its own ctx). A scrape waits at most 2 s for the database.
func (s *Server) scrapeCounts() func(context.Context) (*dbCounts, error) {
	var mu sync.Mutex
	var last context.Context
	var c *dbCounts
	var err error
	return func(ctx context.Context) (*dbCounts, error) {
		mu.Lock()
		defer mu.Unlock()
		if ctx == last {
			return c, err
		}
		last, c = ctx, &dbCounts{}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := s.flushSeen(qctx); err != nil {
			s.log.Warn("metrics", "err", err)
		}
		// Each count through a partial index or a small table;
		// received_at is the database's time, so the age is too.
		var waited float64
		err = s.db.QueryRow(qctx, `SELECT w.n, coalesce(extract(epoch FROM now() - w.since), 0)::float8, c.n,
				t.active, t.retired, t.silent_hour, t.silent_day, t.never, u.n, k.n
			FROM (SELECT count(*) AS n FROM retake_kept) k, (SELECT count(*) AS n, min(received_at) AS since FROM journal WHERE NOT folded) w,
				(SELECT count(*) AS n FROM journal WHERE no_card) u,
				(SELECT count(*) AS n FROM journal_conflicts WHERE settled_at IS NULL) c,
				(SELECT count(*) FILTER (WHERE retired_at IS NULL) AS active, count(*) FILTER (WHERE retired_at IS NOT NULL) AS retired,
					count(*) FILTER (WHERE retired_at IS NULL AND last_seen_at < now() - interval '1 hour') AS silent_hour,
					count(*) FILTER (WHERE retired_at IS NULL AND last_seen_at < now() - interval '1 day') AS silent_day,
					count(*) FILTER (WHERE retired_at IS NULL AND last_seen_at IS NULL) AS never
				FROM tills LEFT JOIN till_seen USING (till_id)) t`).
			Scan(&c.waiting, &waited, &c.conflicts, &c.tills, &c.retired, &c.silentHour, &c.silentDay, &c.neverSeen, &c.unknownCard, &c.kept)
		c.waitedSeconds = max(waited, 0)
		return c, err
	}
}

// Metrics is head office's registry, served by MetricsHandler.
func (s *Server) Metrics() *metrics.Registry { return s.m }

// MetricsHandler serves GET /metrics (Prometheus text format) and GET
// /healthz, without authentication: cmd/headoffice serves it on its own
// address (-metrics-listen), one the tills cannot reach.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.m.Write(r.Context(), w)
	})
	mux.HandleFunc("GET /healthz", s.handleHealth)
	return mux
}

// Health checks what head office needs to answer: the database answers
// within 2 s, and its schema is the one this build migrates to (a newer
// build's migration during a rolling upgrade leaves this process behind).
func (s *Server) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var v int
	if err := s.db.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	if v != len(names) {
		return fmt.Errorf("database schema %d, this build's %d: restart head office with the build that migrated it", v, len(names))
	}
	return nil
}

// handleHealth answers 200 {"status": "ok"}, or 503 with the error (no
// DSN in it: pgx names the host, never the password).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.Health(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
}

// observe counts every request by route (the mux's pattern, so a till id
// in a path does not make a series of its own) and status, and times it.
func (s *Server) observe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := r.Pattern // set by the mux on r as it routes
		if route == "" {
			route = "unmatched"
		}
		s.m.Add("headoffice_http_requests_total", 1, "route", route, "code", strconv.Itoa(rec.code))
		s.m.Observe("headoffice_http_request_duration_seconds", time.Since(start).Seconds(), "route", route)
	})
}

// statusRecorder keeps the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countResults counts a batch's answers by status.
func (s *Server) countResults(res *wire.BatchResult) {
	n := map[string]int{}
	for _, r := range res.Results {
		n[r.Status]++
	}
	for st, k := range n {
		s.m.Add("headoffice_journal_entries_total", float64(k), "result", st)
	}
}

// countMaintain counts an expiry run, the change rows it pruned and, when
// it went well, when.
func (s *Server) countMaintain(st MaintainStats, err error) {
	if st.ChangesPruned > 0 {
		s.m.Add("headoffice_changes_pruned_total", float64(st.ChangesPruned))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.m.Add("headoffice_maintain_runs_total", 1, "result", "failed")
		return
	}
	if err == nil {
		s.m.Add("headoffice_maintain_runs_total", 1, "result", "ok")
		s.maintainOK.Store(time.Now().UnixMilli())
	}
}
