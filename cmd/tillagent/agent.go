package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"tillagent/driver/fiscal"
	"tillagent/driver/scanner"
	"tillagent/driver/scanner/scanconf"
	"tillagent/internal/api"
	"tillagent/internal/config"
	"tillagent/internal/sale"
	"tillagent/internal/store"
	"tillagent/sync/client"
)

// Main is the daemon's wiring, built so that tests can drive it in-process:
// set Config (or ConfigPath), call Run with a context, cancel to stop.
type Main struct {
	ConfigPath string
	Config     *config.Config // set directly by tests; loaded from ConfigPath otherwise
	LogOutput  io.Writer

	// Ready, when not nil, is closed once the agent has started.
	Ready chan struct{}
	// Clock, when set, is the agent's clock (tests pin "now" so that lots
	// and promotions do not depend on the day they run).
	Clock func() time.Time
	// TCPAddr is the address the TCP listener got (tests listen on port 0).
	TCPAddr string
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
	unlock, err := lockStore(cfg.Store.Path)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := store.Open(ctx, store.Options{
		Path:        cfg.Store.Path,
		BusyTimeout: cfg.Store.BusyTimeout,
		TillID:      cfg.Till.TillID,
		Logger:      log.With("component", "store"),
		Clock:       m.Clock,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	// The journal and the card data are not for other users of the till.
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Chmod(cfg.Store.Path+suf, 0o640)
	}

	if err := ensureDemo(ctx, cfg, st, log); err != nil {
		return err
	}
	has, err := st.HasReplica(ctx)
	if err != nil {
		return err
	}
	switch {
	case !has && cfg.Sync.Enabled:
		log.Info("store holds no replica yet: the first sync loads it from head office", "path", cfg.Store.Path)
	case !has:
		log.Warn("store holds no replica yet: import one with `tillctl replica import FILE`", "path", cfg.Store.Path)
	}
	return m.serve(ctx, cfg, st, log)
}

// ensureDemo imports store.demo_replica on first start, unless the till
// syncs: then the replica belongs to head office, and records of a local
// file that head office lacks would stay after the first load (no feed
// removes them) and could be spent as points head office never issued.
func ensureDemo(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) error {
	if cfg.Store.DemoReplica == "" {
		return nil
	}
	if cfg.Sync.Enabled {
		log.Warn("store.demo_replica ignored: sync.enabled is on, so the replica comes from head office only; clear store.demo_replica",
			"file", cfg.Store.DemoReplica)
		return nil
	}
	imported, err := st.EnsureDemo(ctx, cfg.Store.DemoReplica)
	if err != nil {
		return fmt.Errorf("import demo replica %s: %w", cfg.Store.DemoReplica, err)
	}
	if imported {
		log.Info("demo replica imported", "file", cfg.Store.DemoReplica, "path", cfg.Store.Path)
	}
	return nil
}

// serve starts the devices, settles what a crash left, and serves the API
// until ctx ends.
func (m *Main) serve(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) error {
	started := time.Now()
	clock := m.Clock
	if clock == nil {
		clock = time.Now
	}
	printer, closePrinter, err := openPrinter(ctx, *cfg, log)
	if err != nil {
		return err
	}
	defer closePrinter()
	bonusMode, _ := fiscal.ParseBonusMode(cfg.Receipt.BonusMode) // validated by config
	metrics := api.NewMetrics()
	events := api.NewBroker(64)
	kicks := make(chan struct{}, 1) // sales that spent points, for kickSync
	// Set before the API serves its first request: the sale service asks
	// it for cards the replica lacks.
	var syncer *client.Client
	var fetchCard func(context.Context, string) error
	if cfg.Sync.Enabled && cfg.Sync.CardFetchTimeout > 0 {
		fetchCard = func(ctx context.Context, code string) error {
			ctx, cancel := context.WithTimeout(ctx, cfg.Sync.CardFetchTimeout)
			defer cancel()
			err := syncer.FetchCard(ctx, code)
			result := "fetched"
			var ae *client.AnswerError
			switch {
			case errors.Is(err, client.ErrCardUnknown):
				result, err = "unknown", fmt.Errorf("%w: %w", store.ErrUnknownCard, err)
			case errors.Is(err, client.ErrNotLoaded):
				result, err = "not_loaded", fmt.Errorf("%w: %w", sale.ErrReplicaLoading, err)
			case errors.Is(err, client.ErrCycleRunning):
				result, err = "busy", fmt.Errorf("%w: %w", sale.ErrSyncBusy, err)
			case errors.As(err, &ae) && ae.Status < 500:
				// Head office answered, and refused (401: a retired till).
				result, err = "refused", fmt.Errorf("%w: %w", sale.ErrFetchRefused, err)
			case err != nil:
				result = "failed"
			}
			metrics.Add("tillagent_card_fetches_total", 1, "result", result)
			return err
		}
	}
	svc := sale.New(sale.Options{
		Store: st, Printer: printer, StoreID: cfg.Till.StoreID, TillID: cfg.Till.TillID,
		Receipt:      sale.ReceiptOptions{BonusMode: bonusMode, LoyaltyTagName: cfg.Receipt.LoyaltyTagName, TaxSystem: byte(cfg.Receipt.TaxSystem)},
		ExpiringDays: cfg.Receipt.ExpiringDays, Logger: log.With("component", "sale"), Clock: clock,
		MaxChange: fiscal.Money(cfg.Sale.MaxChangeKop), CashRefundOfCard: cfg.Sale.CashRefundOfCard, Syncs: cfg.Sync.Enabled,
		FetchCard: fetchCard, KeepDocs: cfg.Sale.Keep(),
		Observe: func(kind store.DocKind, outcome string) {
			metrics.Add("tillagent_"+string(kind)+"s_total", 1, "outcome", outcome)
			if outcome == "done" {
				metrics.Add("tillagent_receipts_total", 1, "kind", string(kind))
			}
		},
		OnPrinter: func(code, detail string) {
			events.Publish(api.Event{Type: "printer", Data: map[string]string{"code": code, "message": detail}})
		},
		AfterRedeem: func() {
			select {
			case kicks <- struct{}{}:
			default: // a push is asked already
			}
		},
	})
	// Settle what a crash left before any new sale: the service refuses
	// sales until it succeeds, and Run keeps trying while the printer is away.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	if err := svc.Settle(sctx); err != nil {
		log.Error("unfinished sales could not be settled yet; sales wait for the printer", "err", err)
	}
	scancel()
	// Before the first sale: the offline age counts the time the agent
	// was stopped by the printer's clock.
	svc.MarkPrinterClock(ctx)
	go svc.Run(ctx)
	go watchPrinter(ctx, svc)

	drivers := scanconf.Drivers(cfg.Scanners, log.With("component", "scanner"))
	extra := map[string]http.HandlerFunc{
		"GET /v1/sync":      noSync,
		"POST /v1/sync/now": noSync,
	}
	if cfg.Sync.Enabled {
		if syncer, err = startSync(ctx, cfg, st, clock, log); err != nil {
			return err
		}
		go kickSync(ctx, syncer, kicks, log)
		extra["GET /v1/sync"] = func(w http.ResponseWriter, r *http.Request) {
			api.WriteJSON(w, http.StatusOK, withOffline(r.Context(), syncer.Status(), st, clock))
		}
		extra["POST /v1/sync/now"] = func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), cfg.Sync.RequestTimeout*2)
			defer cancel()
			if err := syncer.SyncNow(ctx); err != nil {
				writeSyncError(w, err, cfg.Sync)
				return
			}
			api.WriteJSON(w, http.StatusOK, withOffline(r.Context(), syncer.Status(), st, clock))
		}
	}
	if cfg.Demo.VirtualScanner {
		vs, err := newVirtualScanner()
		if err != nil {
			return err
		}
		defer vs.Close()
		drivers = append(drivers, vs.driver(log.With("component", "scanner")))
		extra["POST /v1/demo/scan"] = vs.handle
	}
	sc := &scanners{health: map[string]scanner.Health{}, events: events, m: metrics,
		cls: scanconf.Classifier(cfg.Classify, st, clock), log: log.With("component", "scanner")}
	scanDone := make(chan struct{})
	go func() { sc.run(ctx, drivers); close(scanDone) }()

	offlineGauges(metrics, st, clock, cfg.Sync.Enabled)
	metrics.Gauge("tillagent_journal_backlog", "Journal entries not yet acknowledged by head office.", func(ctx context.Context) (float64, error) {
		n, err := st.Backlog(ctx)
		return float64(n), err
	})
	metrics.Gauge("tillagent_journal_lost", "1 when head office, restored from a backup older than its -journal-hold, lacks journal entries this till dropped (tillctl status: journal kept).", func(ctx context.Context) (float64, error) {
		k, err := st.JournalKept(ctx)
		if k.Lost {
			return 1, err
		}
		return 0, err
	})
	diskGauges(metrics, st)
	metrics.Gauge("tillagent_event_clients", "Clients connected to /v1/events.", func(context.Context) (float64, error) {
		return float64(events.Subscribers()), nil
	})
	token, err := cfg.API.BearerToken()
	if err != nil {
		return err
	}
	srv := api.New(api.Options{
		Service: svc, Events: events, Metrics: metrics, Token: token, AllowedOrigins: cfg.API.AllowedOrigins,
		Extra: extra, Logger: log.With("component", "api"),
		Status: func(ctx context.Context) any {
			backlog, berr := st.Backlog(ctx)
			docs, _ := st.DocCounts(ctx)
			kept, _ := st.JournalKept(ctx)
			journal := map[string]any{"backlog": backlog, "documents": docs, "kept": kept}
			if d, err := st.Disk(); err != nil {
				journal["disk_error"] = err.Error()
			} else {
				journal["db_bytes"], journal["disk_free_bytes"] = d.DBBytes, d.FreeBytes
			}
			st := map[string]any{
				"version": version, "till_id": cfg.Till.TillID, "store_id": cfg.Till.StoreID, "started_at": started,
				"settled": svc.Settled(), "printer": svc.Printer(ctx), "scanners": sc.status(),
				"journal": journal,
				"sync":    map[string]any{"configured": false},
				"offline": offlineStatus(ctx, st, clock, cfg.Sync.Enabled),
			}
			if syncer != nil {
				// The journal's backlog, read now, not the loop's of its
				// last cycle (liveBacklog).
				s := syncer.Status()
				if berr == nil {
					s.Backlog = backlog
				}
				st["sync"] = s
			}
			return st
		},
	})
	if syncer != nil {
		go publishSync(ctx, syncer, events)
		metrics.Gauge("tillagent_sync_consecutive_failures", "Sync cycles failed in a row (head office unreachable or refusing).", func(context.Context) (float64, error) {
			return float64(syncer.Status().Failures), nil
		})
		metrics.Gauge("tillagent_sync_refused_entries", "Journal entries head office refused (conflict, rejected): kept, sent again after a back-off.", func(context.Context) (float64, error) {
			return float64(syncer.Status().RefusedCount), nil
		})
		if f := cfg.Sync.CertFile; f != "" {
			// Short-lived certificates lapse: an expired one stops the sync
			// (and, after offline_max_age, redemption).
			metrics.Gauge("tillagent_sync_certificate_expiry_seconds", "Seconds until the till's TLS certificate (sync.cert_file) expires; negative once expired.", func(context.Context) (float64, error) {
				at, err := client.CertificateExpiry(f)
				return time.Until(at).Seconds(), err
			})
			if at, err := client.CertificateExpiry(f); err == nil && time.Until(at) < 7*24*time.Hour {
				log.Warn("the till's TLS certificate expires soon: renew it (the new one is read at the next connection)", "cert_file", f, "not_after", at)
			}
		}
	}
	// Listeners open before the agent says it is ready, so that a socket
	// that cannot be opened is a startup error.
	errc := make(chan error, 2)
	listeners := 0
	if cfg.API.Socket != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.API.Socket), 0o750); err != nil {
			return fmt.Errorf("api socket directory: %w", err)
		}
		ln, err := api.ListenUnix(cfg.API.Socket, cfg.API.Mode(), cfg.API.SocketGroup)
		if err != nil {
			return err
		}
		listeners++
		go func() { errc <- srv.ServeUnix(ctx, ln) }()
	}
	if cfg.API.TCP != "" {
		ln, err := api.ListenTCP(cfg.API.TCP)
		if err != nil {
			return err
		}
		m.TCPAddr = ln.Addr().String()
		listeners++
		go func() { errc <- srv.ServeTCP(ctx, ln) }()
	}
	log.Info("ready", "store", cfg.Store.Path, "printer", cfg.Printer.Type, "scanners", len(drivers),
		"socket", cfg.API.Socket, "tcp", m.TCPAddr, "settled", svc.Settled(), "startup", time.Since(started).Round(time.Millisecond))
	if m.Ready != nil {
		close(m.Ready)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		listeners--
	}
	log.Info("stopping")
	for ; listeners > 0; listeners-- {
		if err := <-errc; err != nil && runErr == nil {
			runErr = err
		}
	}
	svc.Drain() // a receipt being printed ends before the port closes
	<-scanDone
	return runErr
}

// watchPrinter reads the printer's state every few seconds, so that paper
// out, an open cover or an unplugged printer reach the event stream before
// a sale fails on them.
func watchPrinter(ctx context.Context, svc *sale.Service) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			svc.Printer(ctx)
		}
	}
}

// startSync starts the background loop that pushes the journal to head
// office and pulls the replica feed; it never blocks a sale.
func startSync(ctx context.Context, cfg *config.Config, st *store.Store, clock func() time.Time, log *slog.Logger) (*client.Client, error) {
	secret, err := cfg.Sync.SecretValue()
	if err != nil {
		return nil, err
	}
	hc, err := client.HTTPClient(client.TLSFiles{CA: cfg.Sync.CAFile, Cert: cfg.Sync.CertFile, Key: cfg.Sync.KeyFile, TillID: cfg.Till.TillID})
	if err != nil {
		return nil, fmt.Errorf("sync.ca_file, sync.cert_file, sync.key_file (till.till_id %s): %w", cfg.Till.TillID, err)
	}
	c, err := client.New(client.Options{URL: cfg.Sync.URL, TillID: cfg.Till.TillID, StoreID: cfg.Till.StoreID,
		Secret: secret, CertAuth: cfg.Sync.CertFile != "", Agent: "tillagent/" + version, ReloadSecret: cfg.Sync.SecretValue, Store: st, HTTPClient: hc, Logger: log, BatchSize: cfg.Sync.BatchSize,
		Interval: cfg.Sync.Interval, BackoffMin: cfg.Sync.BackoffMin, BackoffMax: cfg.Sync.BackoffMax,
		RequestTimeout: cfg.Sync.RequestTimeout, SnapshotPage: cfg.Sync.PageSize, DeltaPage: cfg.Sync.PageSize, Clock: clock})
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	go c.Run(ctx)
	log.Info("sync started", "url", cfg.Sync.URL)
	return c, nil
}

// publishSync puts sync state changes on the event stream.
func publishSync(ctx context.Context, c *client.Client, events *api.Broker) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := c.Status()
		if key := st.State + "|" + st.LastError; key != last {
			last = key
			events.Publish(api.Event{Type: "sync", Data: st})
		}
	}
}

// wrongURLSeen says what answered at sync.url instead of head office.
func wrongURLSeen(err error) string {
	var ae *client.AnswerError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%s answered %s (%s)", ae.URL, ae.Text, ae.Message)
	}
	return "a server that speaks plain HTTP answered an https:// request"
}

// noSync answers the sync routes while sync.url is not configured.
func noSync(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		api.WriteJSON(w, http.StatusOK, map[string]bool{"configured": false})
		return
	}
	api.WriteError(w, http.StatusServiceUnavailable, "sync.not_configured", "Связь с офисом не настроена",
		"sync.enabled is off: this till sells offline only", "")
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

// tlsHint is what to check when head office's certificate did not
// verify: a certificate out of its dates is the till's clock (a day off,
// as tills' clocks are) or head office's lapsed certificate, not the CA
// file.
func tlsHint(err error, sc config.Sync) string {
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired && ci.Cert != nil {
		return fmt.Sprintf("head office's TLS certificate (%s) is valid from %s until %s, and the till's clock says %s: if the clock is wrong, set it (NTP); if it is right, head office's certificate has lapsed or is not valid yet: renew it at head office. sync.ca_file need not change",
			ci.Cert.Subject.CommonName, ci.Cert.NotBefore.UTC().Format(time.RFC3339), ci.Cert.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("head office's TLS certificate is not trusted: set sync.ca_file (now %q) to the PEM of the CA that signed it, or check that sync.url (%s) names the host the certificate is for", sc.CAFile, sc.URL)
}

// tillCertHint is what to check when head office refused the till's own
// certificate in the handshake, or the till could not present it.
func tillCertHint(sc config.Sync) string {
	valid := ""
	if until, err := client.CertificateExpiry(sc.CertFile); err == nil {
		valid = fmt.Sprintf(", valid until %s", until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("head office refused the till's TLS certificate (sync.cert_file %s%s, the till's clock says %s), or the till could not read it: renew it if it has expired, check head office's clock if it is not valid yet, and that it is signed by a CA head office trusts (headoffice serve -tls-client-ca) and names this till; head office's log says why",
		sc.CertFile, valid, time.Now().UTC().Format(time.RFC3339))
}

// writeSyncError answers a failed `sync now` with what the technician
// checks next: the network, the link's speed, the TLS trust, sync.url, the
// till's enrolment, or head office.
func writeSyncError(w http.ResponseWriter, err error, sc config.Sync) {
	switch client.FailureKind(err) {
	case client.FailTimeout, client.FailNoAnswer:
		msg, hint := timeoutHint(err, sc)
		api.WriteError(w, http.StatusBadGateway, "sync.failed", msg, err.Error(), hint)
	case client.FailBusy:
		api.WriteError(w, http.StatusServiceUnavailable, "sync.busy", "Обмен с офисом уже идёт: продажи продолжаются", err.Error(),
			fmt.Sprintf("a sync cycle is still running (tillctl sync status: cycle_running, initial_load_cards, page_size); on a slow link each feed page may take up to sync.request_timeout (%s): if page_size went below sync.page_size (%d), pages timed out — raise sync.request_timeout or lower sync.page_size",
				sc.RequestTimeout, sc.PageSize))
	case client.FailOverloaded:
		api.WriteError(w, http.StatusServiceUnavailable, "sync.head_office_busy", "Офис перегружен: продажи продолжаются, обмен повторится сам", err.Error(),
			fmt.Sprintf("head office (or a proxy before it) takes no more requests just now and said when to come back (Retry-After); the sync loop waits that long, at most sync.backoff_max (%s), and goes on by itself: nothing to fix on this till. If it lasts, head office's operator looks at its -max-till-requests, its database and headoffice_till_requests_shed_total",
				sc.BackoffMax))
	case client.FailTLS:
		api.WriteError(w, http.StatusBadGateway, "sync.failed", "Сертификат офиса не принят: продажи продолжаются, нужен техник", err.Error(), tlsHint(err, sc))
	case client.FailTillCert:
		api.WriteError(w, http.StatusBadGateway, "sync.unauthorized", "Офис не принял сертификат кассы: продажи продолжаются, нужен техник", err.Error(), tillCertHint(sc))
	case client.FailWrongURL:
		api.WriteError(w, http.StatusBadGateway, "sync.failed", "Адрес офиса указан неверно: продажи продолжаются, нужен техник", err.Error(),
			fmt.Sprintf("sync.url (%s) does not reach head office's API: %s; sync.url must be head office's http(s)://host[:port] (https:// if it serves TLS)", sc.URL, wrongURLSeen(err)))
	case client.FailUnauthorized:
		if sc.CertFile != "" && sc.Secret == "" && sc.SecretFile == "" {
			api.WriteError(w, http.StatusBadGateway, "sync.unauthorized", "Офис не принял кассу (неизвестная касса или её сертификат): продажи продолжаются, нужен техник",
				err.Error(), fmt.Sprintf("head office did not admit the till's certificate (sync.cert_file %s): the till must be enrolled (headoffice enrol), the certificate's common name must be its till id, and head office must check tills' certificates (headoffice serve -tls-client-ca); head office's log says why it refused", sc.CertFile))
			return
		}
		api.WriteError(w, http.StatusBadGateway, "sync.unauthorized", "Офис не принял кассу (неизвестная касса или неверный секрет): продажи продолжаются, нужен техник",
			err.Error(), "enrol the till at head office again (headoffice enrol) and put the new secret in sync.secret_file: it is read again at the next sync; head office's log says why it refused")
	case client.FailRefused:
		api.WriteError(w, http.StatusConflict, "sync.refused", "Офис не принял часть записей журнала: продажи продолжаются, записи сохранены",
			err.Error(), "the refused entries stay on the till and are sent again (see refused_entries in sync status); a conflict needs head office's support")
	case client.FailHeadOffice:
		api.WriteError(w, http.StatusBadGateway, "sync.failed", "Офис ответил ошибкой: продажи продолжаются", err.Error(), "see head office's log")
	default:
		api.WriteError(w, http.StatusBadGateway, "sync.failed", "Нет связи с офисом: продажи продолжаются", err.Error(), "check the network and sync.url")
	}
}
