package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// Options configure Open. Path and TillID are required.
type Options struct {
	// Path of the SQLite file; the -wal and -shm files beside it belong to it.
	Path string
	// BusyTimeout is how long a connection waits for a lock (config store.busy_timeout).
	BusyTimeout time.Duration
	// TillID prefixes every journal entry id (config till.till_id).
	TillID string
	// ReadConns is the size of the read pool; 0 means 4.
	ReadConns int
	Logger    *slog.Logger
	// Clock stamps journal entries and their ids; nil means time.Now.
	// Tests set it so that "this month" does not depend on the day they run.
	Clock func() time.Time
	// Monotonic is the time elapsed on a clock that is never set, from
	// any fixed point (nil: the process's monotonic clock, from Open). It
	// keeps the offline age growing while the wall clock is set back
	// (offlineState.now); tests drive it.
	Monotonic func() time.Duration
}

// Store is the till's SQLite database: the replica of head office's data and
// the local journal. One writer connection takes every write transaction
// (BEGIN IMMEDIATE, so a writer never fails half-way on a lock upgrade); a
// pool of read-only connections serves quotes concurrently under WAL.
type Store struct {
	w, r   *sql.DB
	path   string
	tillID string
	log    *slog.Logger
	ids    *idGen
	want   []pragma
	now    func() time.Time
	q      readQueries

	// catalog caches programs, promotions, card kinds and stores: they change
	// only on import, and every quote needs them.
	mu  sync.Mutex
	cat *catalog

	seen monotonic // the offline age's clock (offlineState.now)
}

// PragmaError means a connection does not run with the settings durability
// depends on. The store refuses to run rather than risk losing sales.
type PragmaError struct {
	Path   string
	Pragma string
	Want   string
	Got    string
}

func (e *PragmaError) Error() string {
	return fmt.Sprintf("store %s: pragma %s is %s, want %s; refusing to run", e.Path, e.Pragma, e.Got, e.Want)
}

// ErrSchemaTooNew means the file was written by a newer tillagent.
var ErrSchemaTooNew = errors.New("schema is newer than this tillagent knows")

// Open opens (creating if needed) the store at o.Path, checks the pragmas of
// every connection it makes and applies the embedded migrations.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("open store: empty path")
	}
	if o.TillID == "" {
		return nil, fmt.Errorf("open store %s: empty till id", o.Path)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	want := wantPragmas(o.BusyTimeout)
	w := sql.OpenDB(newConnector(o.Path, dsn(o.Path, o.BusyTimeout, "immediate", false), want))
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if o.Monotonic == nil {
		start := time.Now()
		o.Monotonic = func() time.Duration { return time.Since(start) }
	}
	s := &Store{w: w, path: o.Path, tillID: o.TillID, log: o.Logger, want: want, now: o.Clock, seen: monotonic{elapsed: o.Monotonic}}
	// The writer goes first: it creates the file and switches it to WAL
	// before readers (query_only) look at it.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r := sql.OpenDB(newConnector(o.Path, dsn(o.Path, o.BusyTimeout, "deferred", true), want))
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	r.SetConnMaxIdleTime(0)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: read pool: %w", o.Path, err)
	}
	if err := s.prepareReads(ctx); err != nil {
		s.Close()
		return nil, err
	}
	ids, err := s.newIDGen(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.ids = ids
	return s, nil
}

// Close closes both pools. A WAL checkpoint happens on the last close.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// TillID is the prefix of this store's journal ids.
func (s *Store) TillID() string { return s.tillID }

func dsn(path string, busy time.Duration, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	q.Set("_txlock", txlock)
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

type pragma struct{ name, want string }

func wantPragmas(busy time.Duration) []pragma {
	return []pragma{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10)},
		{"foreign_keys", "1"},
	}
}

// connector opens connections through a private sqlite.Driver whose
// connection hook reads every pragma back on every new physical connection,
// so no connection the pools ever hand out runs with other settings.
type connector struct {
	drv *sqlite.Driver
	dsn string
}

func newConnector(path, dsn string, want []pragma) *connector {
	drv := &sqlite.Driver{}
	drv.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		return checkPragmas(c, path, want)
	})
	return &connector{drv: drv, dsn: dsn}
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.drv.Open(c.dsn)
}

func (c *connector) Driver() driver.Driver { return c.drv }

func checkPragmas(c sqlite.ExecQuerierContext, path string, want []pragma) error {
	for _, p := range want {
		got, err := readPragma(c, p.name)
		if err != nil {
			return fmt.Errorf("store %s: read pragma %s: %w", path, p.name, err)
		}
		if !strings.EqualFold(got, p.want) {
			return &PragmaError{Path: path, Pragma: p.name, Want: p.want, Got: got}
		}
	}
	return nil
}

func readPragma(c sqlite.ExecQuerierContext, name string) (string, error) {
	rows, err := c.QueryContext(context.Background(), "PRAGMA "+name, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		return "", err
	}
	return fmt.Sprint(dest[0]), nil
}

// CheckPragmas reads the pragmas back through both pools; the agent calls it
// at start (Open already did it for the first connections, and the hook does
// it for every later one).
func (s *Store) CheckPragmas(ctx context.Context) error {
	for _, db := range []*sql.DB{s.w, s.r} {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("store %s: check pragmas: %w", s.path, err)
		}
		err = conn.Raw(func(dc any) error {
			c, ok := dc.(sqlite.ExecQuerierContext)
			if !ok {
				return fmt.Errorf("store %s: unexpected driver connection %T", s.path, dc)
			}
			return checkPragmas(c, s.path, s.want)
		})
		conn.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
