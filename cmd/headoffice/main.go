// Command headoffice is the head-office sync service: PostgreSQL behind an
// HTTP/JSON API for tills (journal push, replica feed) and ERP jobs. See
// docs/sync.md.
//
//	headoffice serve  [-listen :8440] [-tls-cert F -tls-key F [-tls-client-ca F]] [-expire-every 1h] [-change-retention 720h] [-journal-hold 2160h] [-metrics-listen 127.0.0.1:9440]
//	headoffice enrol  -till S001-T01 -store S001      prints the till's secret
//	headoffice import FILE                             ERP replica file (.json/.yaml)
//	headoffice card-scope -store S001 [-scope all|home] [CODE...]   show or set the store's card scope; CODEs made home to it
//	headoffice reset-feed -till S001-T01               the till loads its replica afresh (after a restore)
//	headoffice retire -till S001-T01                   the till is admitted no more (stolen, broken); enrol brings it back
//	headoffice tills [-silent 24h]                     every till: last heard from, its build, entries waiting or rejected
//
// The database is HEADOFFICE_DSN (or -dsn); the ERP token HEADOFFICE_ERP_TOKEN
// (or -erp-token-file); the enrolment key, which signs till secrets so that
// a head office restored from a backup admits tills enrolled since,
// HEADOFFICE_ENROL_KEY (or -enrol-key-file; at least 32 bytes).
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/headoffice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "headoffice:", err)
		os.Exit(1)
	}
}

// logOutput is where the log goes (tests read it).
var logOutput io.Writer = os.Stderr

// listening is where serve answers: the API, and with -metrics-listen
// the metrics and health page ("" without).
type listening struct{ api, metrics string }

// run is main without the process: ready, if not nil, gets the listen
// addresses once serving.
func run(ctx context.Context, args []string, out io.Writer, ready func(listening)) (err error) {
	defer func() {
		if err != nil {
			err = redactedError{err} // it may quote the DSN
		}
	}()
	cmd, implicit := "serve", true
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args, implicit = args[0], args[1:], false
	}
	if !isCommand(cmd) {
		// Before the flags and the database: a typo is named as such.
		return fmt.Errorf("unknown command %q (serve, enrol, import, card-scope, reset-feed, retire, tills, retake-journal)", cmd)
	}
	fs := flag.NewFlagSet("headoffice "+cmd, flag.ContinueOnError)
	fs.SetOutput(redactingWriter{os.Stderr}) // a bad value is quoted: it may be the DSN
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: headoffice COMMAND [flags] [ARGS]: serve | enrol | import FILE | card-scope [CODE...] | reset-feed | retire | tills | retake-journal EXPORT...\n  (see docs/sync.md)\nflags of headoffice %s:\n", cmd)
		fs.PrintDefaults()
	}
	dsn := fs.String("dsn", "", "PostgreSQL DSN (default $HEADOFFICE_DSN; not shown here, it may hold a password)")
	tokenFile := fs.String("erp-token-file", "", "file holding the ERP token (default $HEADOFFICE_ERP_TOKEN)")
	enrolKeyFile := fs.String("enrol-key-file", "", "file holding the enrolment key that signs till secrets (default $HEADOFFICE_ENROL_KEY; none: random secrets)")
	listen := fs.String("listen", ":8440", "serve: address to listen on")
	metricsListen := fs.String("metrics-listen", "", "serve: address for GET /metrics and /healthz, unauthenticated: one the tills cannot reach, e.g. 127.0.0.1:9440 (empty: none; /healthz is on -listen too)")
	cert := fs.String("tls-cert", "", "serve: TLS certificate (PEM); with -tls-key serves HTTPS")
	key := fs.String("tls-key", "", "serve: TLS private key (PEM)")
	clientCA := fs.String("tls-client-ca", "", "serve: CA bundle (PEM) of the tills' certificates: a till presenting one it signed, its common name the till id, needs no secret")
	expireEvery := fs.Duration("expire-every", time.Hour, "serve: how often expired lots are written off and debt settled, and the change log pruned (0: never)")
	cardFetch := fs.Bool("card-fetch", true, "serve: tills may ask for a card their replica lacks (a customer of another store on a home store); false: a till reads only its own store's feed")
	retention := fs.Duration("change-retention", 30*24*time.Hour, "serve: how long the change log the tills' deltas read is kept; a till silent longer loads its replica afresh (0: for ever)")
	hold := fs.Duration("journal-hold", 90*24*time.Hour, "serve: tills keep the journal entries head office has folded for this long, then may drop them: at least the age of the oldest backup head office would be restored from (0: tills keep every entry)")
	cardCap := fs.String("offline-card-cap", "0", "serve: points a card may redeem on one till before head office has seen them (0: no limit)")
	tillCap := fs.String("offline-till-cap", "0", "serve: points all cards together may redeem on one till before head office has seen them (0: no limit)")
	maxAge := fs.Duration("offline-max-age", 0, "serve: no redemption on a till whose last feed is older (0: no limit)")
	maxTill := fs.Int("max-till-requests", 0, "serve: till pushes and feed pages worked on at once; more wait -till-queue-wait for a place, then are told to come back (503, Retry-After) (0: twice the pool's connections; -1: no bound)")
	queueWait := fs.Duration("till-queue-wait", 10*time.Second, "serve: how long a till push or feed page waits for a place before it is told to come back")
	busyRetry := fs.Duration("busy-retry-after", 15*time.Second, "serve: the wait told to a till that found head office full (Retry-After, spread over half to one and a half times it)")
	pageCache := fs.Int64("snapshot-cache-mb", 256, "serve: memory for the first-load pages of \"all\" stores given again to the tills loading the same pages (a rollout, a restore) (0: none)")
	pageAge := fs.Duration("snapshot-cache-age", 30*time.Second, "serve: how long a cached first-load page is given out before it is read again")
	tillID := fs.String("till", "", "enrol, reset-feed, retire: till id")
	silent := fs.Duration("silent", 0, "tills: only the tills not heard from for at least this long, or never (0: every till)")
	storeID := fs.String("store", "", "enrol, card-scope: store id")
	scope := fs.String("scope", "", "card-scope: all or home (empty: leave as it is)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if err := checkArgs(cmd, implicit, fs.Args()); err != nil {
		return err
	}
	if err := checkFlags(fs, cmd); err != nil {
		return err
	}
	if *dsn == "" {
		*dsn = os.Getenv("HEADOFFICE_DSN")
	}
	if *dsn == "" {
		return fmt.Errorf("%s: no database: give -dsn postgres://… or set HEADOFFICE_DSN", cmd)
	}
	token, err := secretFrom("HEADOFFICE_ERP_TOKEN", *tokenFile)
	if err != nil {
		return fmt.Errorf("erp token: %w", err)
	}
	enrolKey, err := secretFrom("HEADOFFICE_ENROL_KEY", *enrolKeyFile)
	if err != nil {
		return fmt.Errorf("enrolment key: %w", err)
	}
	if enrolKey != "" && len(enrolKey) < 32 {
		return fmt.Errorf("enrolment key: %d bytes, want at least 32 (e.g. openssl rand -hex 32)", len(enrolKey))
	}
	if cmd == "serve" && token != "" && utf8.RuneCountInString(token) < minTokenLen {
		return fmt.Errorf("erp token: %d characters, want at least %d random characters (e.g. openssl rand -hex 16)", utf8.RuneCountInString(token), minTokenLen)
	}
	if *expireEvery < 0 {
		return fmt.Errorf("-expire-every %s: want a positive duration, or 0 for never", *expireEvery)
	}
	if *retention < 0 || *retention > 0 && *retention < 24*time.Hour {
		return fmt.Errorf("-change-retention %s: want at least 24h (a till silent longer reloads its whole replica), or 0 for ever", *retention)
	}
	if *hold < 0 || *hold > 0 && *hold < 24*time.Hour {
		return fmt.Errorf("-journal-hold %s: want at least 24h (no backup of head office is younger), or 0 for tills to keep every entry", *hold)
	}
	if *maxTill < -1 {
		return fmt.Errorf("-max-till-requests %d: want a positive number, 0 for twice the pool's connections, or -1 for no bound", *maxTill)
	}
	if *queueWait <= 0 {
		return fmt.Errorf("-till-queue-wait %s: want a positive duration (under the tills' sync.request_timeout)", *queueWait)
	}
	if *busyRetry < time.Second {
		return fmt.Errorf("-busy-retry-after %s: want at least 1s (Retry-After is in whole seconds)", *busyRetry)
	}
	if *pageCache < 0 {
		return fmt.Errorf("-snapshot-cache-mb %d: want a size in MB, or 0 for no cache", *pageCache)
	}
	if *pageAge <= 0 {
		return fmt.Errorf("-snapshot-cache-age %s: want a positive duration", *pageAge)
	}
	var off store.OfflineLimits
	if off.CardCap, err = pointsFlag("offline-card-cap", *cardCap); err != nil {
		return err
	}
	if off.TillCap, err = pointsFlag("offline-till-cap", *tillCap); err != nil {
		return err
	}
	if off.MaxAge = *maxAge; off.MaxAge < 0 {
		return fmt.Errorf("-offline-max-age %s: want a non-negative duration (0: no limit)", off.MaxAge)
	}
	log := slog.New(slog.NewTextHandler(logOutput, nil))
	var files *tlsFiles // serve's TLS, loaded before the database: a missing or mismatched file is an error at start
	var trustedCA func(*x509.Certificate) bool
	if cmd == "serve" {
		if (*cert == "") != (*key == "") {
			return errors.New("serve: -tls-cert and -tls-key go together")
		}
		if *clientCA != "" && *cert == "" {
			return errors.New("serve: -tls-client-ca needs -tls-cert and -tls-key (the tills' certificates are checked in the TLS handshake)")
		}
		if *cert != "" {
			if files, err = loadTLSFiles(*cert, *key, *clientCA, log); err != nil {
				return err
			}
		}
		if *clientCA != "" {
			trustedCA = files.trusted
		}
	}
	srv, err := headoffice.Open(ctx, headoffice.Options{DSN: *dsn, ERPToken: token, EnrolKey: []byte(enrolKey), Logger: log, Offline: off,
		ChangeRetention: *retention, JournalHold: *hold, NoCardFetches: !*cardFetch, MaxTillRequests: *maxTill, TillQueueWait: *queueWait, BusyRetryAfter: *busyRetry,
		SnapshotCacheBytes: snapshotCacheBytes(*pageCache), SnapshotCacheAge: *pageAge, TrustedTillCA: trustedCA})
	if err != nil {
		return err
	}
	defer srv.Close()
	switch cmd {
	case "enrol":
		if *tillID == "" || *storeID == "" {
			return errors.New("enrol: -till and -store are required")
		}
		secret, err := srv.Enrol(ctx, *tillID, *storeID)
		if err != nil {
			return err
		}
		// Only the secret on stdout: `headoffice enrol … > secret` makes
		// a file sync.secret_file can read.
		fmt.Fprintf(os.Stderr, "till %s of store %s enrolled; its secret (shown once, put it in sync.secret_file):\n", *tillID, *storeID)
		fmt.Fprintln(out, secret)
		return nil
	case "import":
		if fs.NArg() != 1 {
			return errors.New("import: one replica file expected")
		}
		data, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		r, err := store.ParseReplicaFile(fs.Arg(0), data)
		if err != nil {
			return fmt.Errorf("import %s, nothing written: %w", fs.Arg(0), err)
		}
		st, err := srv.Import(ctx, r)
		if err != nil {
			return fmt.Errorf("import %s, nothing written: %w", fs.Arg(0), err)
		}
		fmt.Fprintf(out, "imported %s: %d catalog records, %d cards, %d lots changed\n", fs.Arg(0), st.Catalog, st.Cards, st.Lots)
		if st.LotsDiffer > 0 {
			fmt.Fprintf(out, "%d lots differ from head office's (points, activation or expiry) and were left alone: a stored lot changes by folding and corrections only\n", st.LotsDiffer)
			more := ""
			if st.LotsDiffer > len(st.DifferingLots) {
				more = fmt.Sprintf(" (the first %d)", len(st.DifferingLots))
			}
			fmt.Fprintf(out, "differing lots%s: %s\n", more, strings.Join(st.DifferingLots, ", "))
		}
		return nil
	case "card-scope":
		if *storeID == "" {
			return errors.New("card-scope: -store is required")
		}
		if *scope != "" {
			if err := srv.SetCardScope(ctx, *storeID, *scope); err != nil {
				return err
			}
		}
		if fs.NArg() > 0 {
			n, err := srv.AssignCards(ctx, *storeID, fs.Args())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d cards newly home to store %s\n", n, *storeID)
		}
		sc, err := srv.StoreCardScope(ctx, *storeID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "store %s: card scope %s, %d home cards\n", sc.StoreID, sc.Scope, sc.HomeCards)
		return nil
	case "reset-feed":
		if *tillID == "" {
			return errors.New("reset-feed: -till is required")
		}
		epoch, err := srv.ResetFeed(ctx, *tillID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "till %s: feed reset (epoch %d); it loads its replica afresh at its next sync\n", *tillID, epoch)
		return nil
	case "tills":
		if *silent < 0 {
			return fmt.Errorf("-silent %s: want a non-negative duration", *silent)
		}
		ts, err := srv.Tills(ctx)
		if err != nil {
			return err
		}
		kept, err := srv.KeptTills(ctx)
		if err != nil {
			return err
		}
		if err := printTills(out, ts, *silent, time.Now()); err != nil {
			return err
		}
		printKeptTills(out, kept)
		return nil
	case "retake-journal":
		return retakeJournal(ctx, srv, fs.Args(), out)
	case "retire":
		if *tillID == "" {
			return errors.New("retire: -till is required")
		}
		at, err := srv.Retire(ctx, *tillID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "till %s: retired at %s; neither its secret nor its certificate is admitted until it is enrolled again\n", *tillID, at.UTC().Format(time.RFC3339))
		return nil
	}
	if token == "" {
		log.Warn("no ERP token: the ERP endpoints refuse every request")
	}
	if off.CardCap.IsZero() && off.TillCap.IsZero() && off.MaxAge == 0 {
		log.Warn("no offline limits: a till cut off from head office lets every card spend its whole balance, on every till at once " +
			"(set -offline-card-cap, -offline-till-cap or -offline-max-age)")
	}
	var tlsConfig *tls.Config
	if files != nil {
		// Read again when the files change (tlsFiles).
		tlsConfig = &tls.Config{GetConfigForClient: files.config}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: tlsConfig, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)} // TLS handshake errors among them
	errc := make(chan error, 2)
	go func() {
		if tlsConfig != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	at := listening{api: ln.Addr().String()}
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			hs.Close()
			return fmt.Errorf("serve: -metrics-listen: %w", err)
		}
		ms := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		defer ms.Close()
		go func() {
			if err := ms.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
		at.metrics = mln.Addr().String()
		log.Info("head office metrics serving", "addr", at.metrics)
	}
	log.Info("head office serving", "addr", at.api, "tls", *cert != "")
	if ready != nil {
		ready(at)
	}
	var tick <-chan time.Time
	if *expireEvery > 0 {
		t := time.NewTicker(*expireEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-tick:
			if st, err := srv.Maintain(ctx); err != nil {
				log.Error("lot maintenance", "err", err)
			} else if st.Expired+st.Settled > 0 {
				log.Info("lot maintenance", "expired_lots", st.Expired, "settled_cards", st.Settled)
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		}
	}
}

// minTokenLen is the shortest ERP token serve takes (docs/sync.md).
const minTokenLen = 16

func isCommand(cmd string) bool {
	switch cmd {
	case "serve", "enrol", "import", "card-scope", "reset-feed", "retire", "tills", "retake-journal":
		return true
	}
	return false
}

// checkArgs refuses arguments a command would ignore or misread: a
// command after the flags (`headoffice -dsn D import F` would parse as
// serve and start serving), arguments to a command that takes none, and a
// flag after the arguments (flag parsing stops at the first argument, so
// it would be taken for one).
func checkArgs(cmd string, implicit bool, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if implicit && isCommand(args[0]) {
		return fmt.Errorf("command %q after the flags: the command comes first, then its flags (headoffice %s -dsn DSN …)", args[0], args[0])
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("%s: flag %s after the arguments %q: flags go right after the command, before its arguments", cmd, a, args)
		}
	}
	switch cmd {
	case "serve", "enrol", "reset-feed", "retire", "tills":
		return fmt.Errorf("%s takes no arguments, got %q", cmd, args)
	}
	return nil
}

// checkFlags refuses a flag given to a command that does not read it
// (`enrol -scope home`, `tills -store S002`): taken silently, the command
// ran as if it was not there. A flag's commands are those its usage starts
// with ("enrol, card-scope: store id"); one without is every command's.
func checkFlags(fs *flag.FlagSet, cmd string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		cmds, _, ok := strings.Cut(f.Usage, ": ")
		if !ok || err != nil {
			return
		}
		names := strings.Split(cmds, ", ")
		for _, n := range names {
			if !isCommand(n) {
				return // not a list of commands
			}
		}
		if !slices.Contains(names, cmd) {
			err = fmt.Errorf("-%s is not a flag of %s, only of %s", f.Name, cmd, cmds)
		}
	})
	return err
}

// pointsFlag reads a non-negative number of points given to -name.
func pointsFlag(name, v string) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(v)
	if err != nil || d.IsNegative() {
		return decimal.Decimal{}, fmt.Errorf("-%s %q: want a non-negative number of points (0: no limit)", name, v)
	}
	return d, nil
}

// secretFrom is the file's content (trimmed) when file is set, else the
// environment variable env. A file holding nothing but white space (an
// empty or unmounted secret) is refused, not taken as "no secret".
func secretFrom(env, file string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty (an unmounted secret?)", file)
	}
	return s, nil
}

// printTills writes the tills report as a table, the tills silent longest
// first (never heard from before all): with silent > 0 only those not
// heard from for that long. Retired tills come last, marked.
func printTills(out io.Writer, ts []headoffice.TillState, silent time.Duration, now time.Time) error {
	slices.SortStableFunc(ts, func(a, b headoffice.TillState) int {
		if (a.RetiredAt == nil) != (b.RetiredAt == nil) {
			return cmp.Compare(boolInt(a.RetiredAt != nil), boolInt(b.RetiredAt != nil))
		}
		return cmp.Compare(seenUnix(a), seenUnix(b))
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TILL\tSTORE\tLAST SEEN\tAGO\tAGENT\tWAITING\tREJECTED\tFOLDED THROUGH")
	for _, t := range ts {
		seen, ago := "never", "-"
		if t.LastSeenAt != nil {
			seen, ago = t.LastSeenAt.UTC().Format(time.RFC3339), now.Sub(*t.LastSeenAt).Truncate(time.Second).String()
		}
		if silent > 0 && (t.RetiredAt != nil || t.LastSeenAt != nil && now.Sub(*t.LastSeenAt) < silent) {
			continue
		}
		if t.RetiredAt != nil {
			ago = "retired " + t.RetiredAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", t.TillID, t.StoreID, seen, ago, oneWord(t.Agent), t.Waiting, t.Rejected, cmp.Or(t.FoldedThrough, "-"))
	}
	return tw.Flush()
}

// printKeptTills names the tills whose entries retake-journal kept and
// head office has not taken yet: the restore is not over for them.
func printKeptTills(out io.Writer, kept []headoffice.KeptTill) {
	if len(kept) == 0 {
		return
	}
	fmt.Fprintln(out, "\nentries kept by retake-journal, taken when the till syncs with its enrolment secret or is enrolled again:")
	for _, k := range kept {
		state := "not enrolled here"
		if k.Enrolled {
			state = "enrolled, its take failed: the next maintenance run tries again (head office's log says why)"
		}
		fmt.Fprintf(out, "  till %s: %s since %s, %s\n", k.TillID, count(k.Entries, "entry", "entries"), k.KeptAt.UTC().Format(time.RFC3339), state)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// seenUnix orders by when a till was last heard from, never first.
func seenUnix(t headoffice.TillState) int64 {
	if t.LastSeenAt == nil {
		return -1 << 62
	}
	return t.LastSeenAt.UnixNano()
}

// oneWord is a till's agent as one column: white space and control
// characters as _, so the table splits on blanks (awk, a tab in a
// User-Agent).
func oneWord(agent string) string {
	if agent == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, agent)
}

// snapshotCacheBytes is -snapshot-cache-mb as Options want it: 0 is no
// cache.
func snapshotCacheBytes(mb int64) int64 {
	if mb == 0 {
		return -1
	}
	return mb << 20
}
