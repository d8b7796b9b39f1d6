// Package headoffice is the head-office service: PostgreSQL holds the cards,
// lots and every till's journal; tills push journal batches and pull a
// replica feed over HTTP/JSON; ERP jobs load the catalog and cards and take
// the journal back. See docs/sync.md.
package headoffice

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"tillagent/internal/metrics"
	"tillagent/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options configure Open.
type Options struct {
	// DSN is a PostgreSQL connection string (URL or key=value).
	DSN string
	// ERPToken authenticates ERP jobs (Authorization: Bearer TOKEN). Empty
	// disables the ERP endpoints.
	ERPToken string
	// Offline are the limits published to every till in the feed: points a
	// card (and a till in all) may redeem before head office has folded
	// them, and how long after its last feed a till may redeem at all.
	Offline store.OfflineLimits
	// EnrolKey, when set, signs the secrets Enrol issues, so that a head
	// office restored from an older backup admits a till enrolled since
	// (see readmit). Keep it outside the database and its backups, as
	// safe as the ERP token: with it anyone can make a till's secret.
	EnrolKey []byte
	// MaxConns of the pool; 0 means the DSN's pool_max_conns, else 16.
	MaxConns int32
	Logger   *slog.Logger
	// Clock is used for lot expiry and corrections; nil means time.Now.
	Clock func() time.Time
	// ChangeRetention is how long the change log the feed reads from is
	// kept (pruned by Maintain); a till whose cursor is older loads its
	// replica afresh. 0 keeps it for ever.
	ChangeRetention time.Duration
	// JournalHold is how long after head office has folded a till's
	// entries the till keeps them (journalheld.go): at least as long ago as
	// the oldest backup head office would be restored from. 0: tills keep
	// their journals whole.
	JournalHold time.Duration
	// NoCardFetches refuses tills asking for cards their replica lacks
	// (POST /v1/till/cards, 403): a till then reads only its own store's
	// feed, and a customer of another store is unknown on a `home` store.
	NoCardFetches bool
	// MaxTillRequests bounds the pushes and feed pages head office works
	// on at once; more wait up to TillQueueWait for a place, then are
	// answered 503 with Retry-After. 0 means twice the pool's connections;
	// negative, no bound. A till's card fetch (a cashier waiting) is not
	// bounded, nor are ERP's requests.
	MaxTillRequests int
	// TillQueueWait: 0 means 10 s.
	TillQueueWait time.Duration
	// BusyRetryAfter is the wait told to a till shed (Retry-After), spread
	// over half to one and a half times it; 0 means 15 s.
	BusyRetryAfter time.Duration
	// SnapshotCacheBytes bounds the first-load pages of "all"-scope
	// stores kept to give other tills loading the same pages (pagecache.go):
	// 0 means 256 MB, negative keeps none. SnapshotCacheAge is how long a
	// page is given out (0: 30 s): an older one is read again.
	SnapshotCacheBytes int64
	SnapshotCacheAge   time.Duration
	// TrustedTillCA, when set, says whether a till certificate's CA (the
	// anchor its chain was verified to in the handshake) is still in the
	// tills' CA bundle: a connection kept alive since the bundle dropped
	// it is refused at its next request. Nil: every handshake's CA stays
	// trusted for the connection.
	TrustedTillCA func(*x509.Certificate) bool
}

// Server is head office: the database and the HTTP handlers over it.
type Server struct {
	db       *pgxpool.Pool
	erpToken string
	enrolKey []byte
	offline  store.OfflineLimits
	log      *slog.Logger
	now      func() time.Time
	retries  atomic.Int64 // ingest transactions retried after a deadlock or serialization failure
	rereads  atomic.Int64 // ingests folded again reading every lot of their cards
	// lost counts the connections to PostgreSQL found gone (the pool
	// reconnected).
	lost atomic.Int64
	down *outage
	m    *metrics.Registry
	// maintainOK is when the last expiry run ended well (Unix ms; 0: none).
	maintainOK atomic.Int64
	seen       seenLog // when each till was last heard from (seen.go)
	// changeRetention: Options.ChangeRetention.
	changeRetention time.Duration
	journalHold     time.Duration // Options.JournalHold
	noCardFetches   bool
	admission       *admission // till requests at once (admit.go)
	pages           *pageCache // first-load pages shared by tills (nil: none)
	// clockSkew is head office's clock minus the database server's at the
	// last check (ns; checkClock).
	clockSkew atomic.Int64
	// trustedCA: Options.TrustedTillCA.
	trustedCA func(*x509.Certificate) bool
}

// connLost reports whether err says the connection to PostgreSQL is gone:
// the server restarted or failed over, or an administrator or a proxy cut
// it. Not a statement failing: the same request may run again on a new
// connection (ingestion is idempotent; a commit whose answer was lost is a
// duplicate the second time).
func connLost(err error) bool {
	var ce *pgconn.ConnectError
	switch {
	case err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &ce):
		// No connection to be had: the server down, starting, or out of
		// connection slots.
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	var ne net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}

// lostConn, when err is a lost connection, closes every connection of the
// pool (a failover takes them all; an idle one is not pinged before its
// next use) so that what runs next connects afresh, and says so.
func (s *Server) lostConn(err error) bool {
	if !connLost(err) {
		return false
	}
	s.lost.Add(1)
	s.db.Reset()
	s.down.lost(err)
	return true
}

// outage logs a lost database once, not once a request of every till
// retrying, and once that PostgreSQL answers again: when the pool next
// connects (pgxpool's AfterConnect), since lostConn closed every
// connection.
type outage struct {
	since atomic.Int64 // Unix ns the connection was found lost; 0: up
	log   *slog.Logger
}

func (o *outage) lost(err error) {
	if o.since.CompareAndSwap(0, time.Now().UnixNano()) {
		o.log.Warn("connection to PostgreSQL lost: reconnecting", "err", err)
	} else {
		o.log.Debug("connection to PostgreSQL still lost", "err", err)
	}
}

func (o *outage) connected(context.Context, *pgx.Conn) error {
	if since := o.since.Swap(0); since != 0 {
		o.log.Info("connection to PostgreSQL back", "down_for", time.Since(time.Unix(0, since)).Round(time.Millisecond))
	}
	return nil
}

// retryLost runs op, and once more on fresh connections when it failed
// on a lost one: for the tills' requests, which a failover should only
// slow down. op must be safe to run twice.
func (s *Server) retryLost(op func() error) error {
	err := op()
	if s.lostConn(err) {
		err = lostBefore(op())
	}
	return err
}

// afterLost is an error of a request run again after its connection was
// lost: whether the first run committed is unknown, so whatever the second
// says, the caller is told to send the request again (lostReply). The pool
// was reset for the first loss; a second one resets it again (connLost of
// the error inside).
type afterLost struct{ err error }

func (e afterLost) Error() string { return e.err.Error() }
func (e afterLost) Unwrap() error { return e.err }

// lostBefore marks err (if any) as coming after a lost connection.
func lostBefore(err error) error {
	if err == nil {
		return nil
	}
	return afterLost{err}
}

// LostConnections is how many times a request found its connection to
// PostgreSQL gone.
func (s *Server) LostConnections() int64 { return s.lost.Load() }

// Retries is how many ingest transactions PostgreSQL aborted for a deadlock
// or a serialization failure and were retried (0 is the design: fixed lock
// order).
func (s *Server) Retries() int64 { return s.retries.Load() }

// LotRereads is how many ingests were folded again reading every lot of
// their cards, because a lot an entry creates existed already, used up
// (a till or ERP reusing an id; 0 in trade).
func (s *Server) LotRereads() int64 { return s.rereads.Load() }

// Open connects, applies the embedded migrations and returns the server.
func Open(ctx context.Context, o Options) (*Server, error) {
	if o.DSN == "" {
		return nil, errors.New("open head office: empty DSN")
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("open head office: parse DSN: %w", err)
	}
	// pgx's own default is the CPU count (at least 4): too few for a
	// hundred tills' pushes and polls. An operator's pool_max_conns in the
	// DSN stands.
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !dsnSets(o.DSN, "pool_max_conns"):
		cfg.MaxConns = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// No JIT unless the DSN asks for it: ingestion and the feeds run with
	// sequential scans off, whose penalty cost puts any plan that still
	// scans a table over jit_above_cost, and a table not analyzed yet (a
	// million lots just loaded) is estimated at many times its rows: a
	// delta's 5,000-card lots look-up compiled for 15 ms and ran 231 ms
	// instead of 30 (EXPLAIN ANALYZE, 2026-12-04).
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	down := &outage{log: o.Logger}
	cfg.AfterConnect = down.connected
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open head office: %w", err)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	s := &Server{db: db, erpToken: o.ERPToken, enrolKey: o.EnrolKey, offline: o.Offline, log: o.Logger, down: down, now: o.Clock,
		changeRetention: o.ChangeRetention, journalHold: o.JournalHold, noCardFetches: o.NoCardFetches, admission: newAdmission(o, cfg.MaxConns),
		pages: newPageCache(o.SnapshotCacheBytes, o.SnapshotCacheAge), trustedCA: o.TrustedTillCA}
	s.m = newMetrics(s)
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.CheckCatalog(ctx); err != nil {
		// Stored before head office refused such records (an older build,
		// a restored backup): every till's feed import refuses them.
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				s.log.Error("stored catalog record every till refuses: ERP must send it again, corrected", "err", e)
			}
		} else {
			s.log.Error("check the stored catalog", "err", err)
		}
	}
	s.checkClock(ctx)
	s.startSeen()
	return s, nil
}

// CheckCatalog validates the stored catalog (stores, groups, products,
// programs, promotions, card kinds, card keys) as every till's feed import
// does, and returns what it refuses (store.RecordError each). Records an
// older build accepted may fail it; Open logs them.
func (s *Server) CheckCatalog(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("check the stored catalog: %w", err)
	}
	defer tx.Rollback(ctx)
	var r store.Replica
	r.Version = 1
	if err := s.feedCatalog(ctx, tx, &r, `SELECT section, body::text FROM catalog ORDER BY section, id`, nil); err != nil {
		return fmt.Errorf("check the stored catalog: %w", err)
	}
	return r.Validate(nil)
}

// Close closes the pool.
func (s *Server) Close() {
	s.stopSeen()
	s.db.Close()
}

// migrate applies the embedded NNNN_name.sql files in one transaction under
// an advisory lock, so two head-office processes starting together do not
// race.
func (s *Server) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("head office migrate: %w", err)
	}
	sort.Strings(names)
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("head office migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7242650001)`); err != nil {
		return fmt.Errorf("head office migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)`); err != nil {
		return fmt.Errorf("head office migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		return fmt.Errorf("head office migrate: %w", err)
	}
	if cur > len(names) {
		return fmt.Errorf("head office migrate: database schema %d is newer than this build (%d)", cur, len(names))
	}
	for i, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			return fmt.Errorf("head office migration %s: want number %d", base, i+1)
		}
		if i < cur {
			continue
		}
		body, err := migrationFS.ReadFile(n)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("head office migration %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version; INSERT INTO schema_version VALUES (`+strconv.Itoa(i+1)+`)`); err != nil {
			return fmt.Errorf("head office migration %s: %w", base, err)
		}
		s.log.Info("head office migrated", "migration", base)
	}
	if err := s.renumberForeignXids(ctx, tx); err != nil {
		return fmt.Errorf("head office start: %w", err)
	}
	return tx.Commit(ctx)
}

// inTx runs f in a transaction of the given isolation and commits.
func (s *Server) inTx(ctx context.Context, opts pgx.TxOptions, f func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// DB is the connection pool, for operational queries and tests.
func (s *Server) DB() *pgxpool.Pool { return s.db }

// dsnSets reports whether the DSN, a URL or key=value pairs, names the
// parameter.
func dsnSets(dsn, param string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has(param)
	}
	return regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(param) + `\s*=`).MatchString(dsn)
}
