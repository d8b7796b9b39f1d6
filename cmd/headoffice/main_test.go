package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/testpki"
	"tillagent/sync/pgtest"
)

// TestServeEnrolImport drives the command: import the demo, enrol a till,
// serve over loopback and fetch the till's feed with the printed secret.
func TestServeEnrolImport(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "8 cards, 9 lots") {
		t.Fatalf("import output: %q", out.String())
	}
	// The same file again with one lot's points changed: nothing is
	// written, and the lot that differs is named.
	demo, err := os.ReadFile("../../testdata/demo/replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(t.TempDir(), "replica.yaml")
	os.WriteFile(changed, bytes.Replace(demo, []byte(`{id: L-13-2, card: "2900000000018", points: "200"`), []byte(`{id: L-13-2, card: "2900000000018", points: "250"`), 1), 0o644)
	out.Reset()
	if err := run(ctx, []string{"import", "-dsn", dsn, changed}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0 cards, 0 lots changed") || !strings.Contains(out.String(), "1 lots differ") ||
		!strings.Contains(out.String(), "differing lots: 2900000000018/L-13-2\n") {
		t.Fatalf("re-import with a lot changed, output: %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"enrol", "-dsn", dsn, "-till", "S001-T01", "-store", "S001"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	secret := lines[len(lines)-1]
	if len(secret) != 64 {
		t.Fatalf("enrol output: %q", out.String())
	}
	// Serving with no offline limit at all warns (the log is read after
	// serve has stopped); with one it does not.
	var logged bytes.Buffer
	logOutput = &logged
	defer func() { logOutput = os.Stderr }()
	serve := func(ctx context.Context, extra ...string) (string, chan error) {
		addrc := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append([]string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0"}, extra...), &out, func(l listening) { addrc <- l.api })
		}()
		select {
		case addr := <-addrc:
			return addr, done
		case err := <-done:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not start")
		}
		return "", nil
	}
	lctx, lcancel := context.WithCancel(ctx)
	_, ldone := serve(lctx, "-offline-card-cap", "500")
	lcancel()
	if err := <-ldone; err != nil {
		t.Fatalf("serve with a card cap: %v", err)
	}
	if strings.Contains(logged.String(), "no offline limits") {
		t.Fatalf("serve with a card cap warned of no offline limits:\n%s", logged.String())
	}
	sctx, cancel := context.WithCancel(ctx)
	addr, done := serve(sctx)
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/till/feed", nil)
	req.SetBasicAuth("S001-T01", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("feed through the served command: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}
	if !strings.Contains(logged.String(), "no offline limits") {
		t.Fatalf("serve with every offline cap 0 logged no warning:\n%s", logged.String())
	}
}

// TestCardScopeAndResetCommands: set a store's scope and its home cards,
// refuse narrowing a store with a till, reset a till's feed.
func TestCardScopeAndResetCommands(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var out bytes.Buffer
	for _, args := range [][]string{
		{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"},
		{"card-scope", "-dsn", dsn, "-store", "S002", "-scope", "home", "2900000000018", "2900000000025"},
		{"enrol", "-dsn", dsn, "-till", "S001-T01", "-store", "S001"},
		{"reset-feed", "-dsn", dsn, "-till", "S001-T01"},
	} {
		if err := run(ctx, args, &out, nil); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for _, want := range []string{"2 cards newly home to store S002", "store S002: card scope home, 2 home cards", "till S001-T01: feed reset (epoch "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(ctx, []string{"card-scope", "-dsn", dsn, "-store", "S001", "-scope", "home"}, &out, nil); err == nil ||
		!strings.Contains(err.Error(), "1 enrolled tills") {
		t.Fatalf("narrowing a store with a till: %v", err)
	}
	if err := run(ctx, []string{"reset-feed", "-dsn", dsn, "-till", "S009-T09"}, &out, nil); err == nil || !strings.Contains(err.Error(), "unknown till") {
		t.Fatalf("reset of an unknown till: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"retire", "-dsn", dsn, "-till", "S001-T01"}, &out, nil); err != nil || !strings.Contains(out.String(), "till S001-T01: retired at ") {
		t.Fatalf("retire: %v, output %q", err, out.String())
	}
	if err := run(ctx, []string{"retire", "-dsn", dsn, "-till", "S009-T09"}, &out, nil); err == nil || !strings.Contains(err.Error(), "unknown till") {
		t.Fatalf("retire of an unknown till: %v", err)
	}
}

// TestEnrolKeyFile: -enrol-key-file signs the secrets enrol prints; a key
// shorter than 32 bytes or a missing file is refused before anything runs.
func TestEnrolKeyFile(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, short := filepath.Join(dir, "enrol.key"), filepath.Join(dir, "short.key")
	os.WriteFile(good, []byte(strings.Repeat("ab", 16)+"\n"), 0o600)
	os.WriteFile(short, []byte("too short\n"), 0o600)
	out.Reset()
	if err := run(ctx, []string{"enrol", "-dsn", dsn, "-enrol-key-file", good, "-till", "S001-T01", "-store", "S001"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if s := lines[len(lines)-1]; !strings.HasPrefix(s, "e1.") || !strings.HasSuffix(s, ".S001") {
		t.Fatalf("keyed enrol output: %q", out.String())
	}
	for file, want := range map[string]string{short: "want at least 32", filepath.Join(dir, "none"): "no such file"} {
		err := run(ctx, []string{"enrol", "-dsn", dsn, "-enrol-key-file", file, "-till", "S001-T02", "-store", "S001"}, &out, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("key file %s: %v, want %q", file, err, want)
		}
	}
}

// TestUnknownCommandBeforeAnything: a mistyped command is named as such,
// even without a database to connect to; no DSN at all names the flag and
// the variable; a refused import says nothing was written.
func TestUnknownCommandBeforeAnything(t *testing.T) {
	t.Setenv("HEADOFFICE_DSN", "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"bogus"}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
		t.Errorf("bogus: %v, want it named an unknown command", err)
	}
	if err := run(context.Background(), []string{"serve", "-h"}, &out, nil); err != nil {
		t.Errorf("serve -h: %v, want the usage and no error", err)
	}
	// No DSN anywhere: the error names where it comes from.
	if err := run(context.Background(), []string{"tills"}, &out, nil); err == nil || !strings.Contains(err.Error(), "give -dsn postgres://… or set HEADOFFICE_DSN") {
		t.Errorf("tills without a DSN: %v, want it to name -dsn and HEADOFFICE_DSN", err)
	}
	dsn := pgtest.DSN(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\ncards:\n  - {code: \"1\", kind: nosuch, state: active}\n"), 0o600)
	err = run(context.Background(), []string{"import", "-dsn", dsn, bad}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing written") {
		t.Errorf("refused import: %v, want it to say nothing was written", err)
	}
	os.WriteFile(bad, []byte("version: 1\nlots:\n  - {id: L1, card: \"1\", points: -5, accrued_at: 2026-01-01T00:00:00Z}\n"), 0o600)
	err = run(context.Background(), []string{"import", "-dsn", dsn, bad}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing written") {
		t.Errorf("import refused by its file's checks: %v, want it to say nothing was written", err)
	}
}

// TestMisplacedArgumentsRefused: a command after the flags
// (`headoffice -dsn D import F`, which used to parse as serve and start
// serving), arguments to serve, a flag after a command's arguments, and a
// flag of another command (`enrol -scope home`, `tills -store S002`, taken
// and ignored before) are refused with an error saying where they go,
// before anything runs.
func TestMisplacedArgumentsRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	demo := "../../testdata/demo/replica.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-dsn", dsn, "import", demo}, `command "import" after the flags: the command comes first, then its flags`},
		{[]string{"-dsn", dsn, "-listen", "127.0.0.1:0", "enrol", "-till", "S001-T01", "-store", "S001"}, `command "enrol" after the flags`},
		{[]string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0", "these", "are", "ignored"}, `serve takes no arguments, got ["these" "are" "ignored"]`},
		{[]string{"-listen", "127.0.0.1:0", "stray"}, `serve takes no arguments, got ["stray"]`},
		{[]string{"reset-feed", "-dsn", dsn, "-till", "S001-T01", "S001-T02"}, `reset-feed takes no arguments`},
		{[]string{"import", demo, "-dsn", dsn}, `import: flag -dsn after the arguments`},
		// A flag of another command (before, taken and ignored).
		{[]string{"enrol", "-dsn", dsn, "-till", "S001-T09", "-store", "S001", "-scope", "home"}, `-scope is not a flag of enrol, only of card-scope`},
		{[]string{"tills", "-dsn", dsn, "-store", "S002"}, `-store is not a flag of tills, only of enrol, card-scope`},
		{[]string{"import", "-dsn", dsn, "-offline-card-cap", "100", demo}, `-offline-card-cap is not a flag of import, only of serve`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, c.args, &bytes.Buffer{}, func(l listening) { t.Errorf("%q started serving on %s", c.args, l.api) })
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
	// Nothing was imported by the refused import.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"import", "-dsn", dsn, demo}, &out, nil); err != nil || !strings.Contains(out.String(), "8 cards, 9 lots changed") {
		t.Errorf("the import, right: %v %q (want every card new: the refused ones wrote nothing)", err, out.String())
	}
}

// TestSecretsAndFlagsChecked: serve refuses an ERP token shorter than 16
// characters and takes one of 16 (an ERP request with it is answered); an
// enrolment key or token file that is empty or white space is refused, not
// taken as "no key"; bad offline limits, a negative -expire-every, a
// -change-retention under a day and bad till admission flags name the flag.
func TestSecretsAndFlagsChecked(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	blank, empty := filepath.Join(dir, "blank.key"), filepath.Join(dir, "empty.key")
	os.WriteFile(blank, []byte("  \n\t\n"), 0o600)
	os.WriteFile(empty, nil, 0o600)
	serveArgs := []string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0", "-offline-card-cap", "500"}
	t.Setenv("HEADOFFICE_ERP_TOKEN", "short-token-15c")
	for _, c := range []struct {
		args []string
		want string
	}{
		{serveArgs, "erp token: 15 characters, want at least 16 random characters"},
		{[]string{"enrol", "-dsn", dsn, "-enrol-key-file", blank, "-till", "S001-T01", "-store", "S001"}, "enrolment key: " + blank + " is empty"},
		{[]string{"enrol", "-dsn", dsn, "-enrol-key-file", empty, "-till", "S001-T01", "-store", "S001"}, "enrolment key: " + empty + " is empty"},
		{append(serveArgs, "-erp-token-file", blank), "erp token: " + blank + " is empty"},
		{append(serveArgs, "-erp-token-file", empty), "erp token: " + empty + " is empty"},
	} {
		err := run(context.Background(), c.args, &bytes.Buffer{}, func(listening) { t.Errorf("%q started serving", c.args) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
	t.Setenv("HEADOFFICE_ERP_TOKEN", "0123456789abcdef")
	for _, c := range []struct{ flag, value, want string }{
		{"-offline-card-cap", "-5", `-offline-card-cap "-5": want a non-negative number`},
		{"-offline-till-cap", "lots", `-offline-till-cap "lots": want a non-negative number`},
		{"-offline-max-age", "-1h", `-offline-max-age -1h0m0s: want a non-negative duration`},
		{"-expire-every", "-5m", `-expire-every -5m0s: want a positive duration, or 0 for never`},
		{"-change-retention", "10h", `-change-retention 10h0m0s: want at least 24h`},
		{"-change-retention", "-1h", `-change-retention -1h0m0s: want at least 24h`},
		{"-journal-hold", "10h", `-journal-hold 10h0m0s: want at least 24h`},
		{"-journal-hold", "-1h", `-journal-hold -1h0m0s: want at least 24h`},
		{"-max-till-requests", "-2", `-max-till-requests -2: want a positive number, 0 for twice the pool's connections, or -1 for no bound`},
		{"-till-queue-wait", "0s", `-till-queue-wait 0s: want a positive duration`},
		{"-busy-retry-after", "500ms", `-busy-retry-after 500ms: want at least 1s`},
		{"-snapshot-cache-mb", "-1", `-snapshot-cache-mb -1: want a size in MB, or 0 for no cache`},
		{"-snapshot-cache-age", "0s", `-snapshot-cache-age 0s: want a positive duration`},
	} {
		args := append(slices.Clone(serveArgs), c.flag, c.value)
		err := run(context.Background(), args, &bytes.Buffer{}, func(listening) { t.Errorf("%q started serving", args) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.flag, c.value, err, c.want)
		}
	}
	// A 16-character token serves, and ERP requests carrying it are answered.
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- run(ctx, serveArgs, &bytes.Buffer{}, func(l listening) { addrc <- l.api }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve with a 16-character token: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/erp/reports/overdrafts", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("ERP request with the 16-character token: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

// TestServeTLS: with -tls-cert and -tls-key head office serves HTTPS; a
// missing key file is an error at start that names both files.
func TestServeTLS(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "head office's CA")
	srv := ca.Server(t)
	certFile, keyFile := srv.CertFile, srv.KeyFile

	err := run(context.Background(), []string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", filepath.Join(dir, "none.pem")}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("serve with a missing key file: %v, want an error naming both files", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}, io.Discard, func(l listening) { addrc <- l.api })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get("https://" + addr + "/v1/till/feed")
	if err != nil {
		t.Fatalf("HTTPS request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("feed without credentials over HTTPS: %s, want 401", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServeClientCA: with -tls-client-ca, a till presenting a certificate
// that CA signed (its common name the till id) is served its feed with no
// secret; -tls-client-ca without -tls-cert, or naming a file with no
// certificate in it, is refused before serving.
func TestServeClientCA(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	ctx := context.Background()
	ca := testpki.NewCA(t, "tills CA")
	srv := ca.Server(t)
	certFile, keyFile, caFile := srv.CertFile, srv.KeyFile, ca.File
	notPEM := filepath.Join(dir, "junk.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-client-ca", caFile}, "-tls-client-ca needs -tls-cert"},
		{[]string{"-tls-cert", certFile, "-tls-key", keyFile, "-tls-client-ca", notPEM}, "no PEM certificate"},
	} {
		err := run(ctx, append([]string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0"}, c.args...), io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want %q", c.args, err, c.want)
		}
	}

	demoTill(t, dsn, "S001-T07")
	addr := serveTLSAt(t, dsn, "-tls-cert", certFile, "-tls-key", keyFile, "-tls-client-ca", caFile)
	till := ca.Till(t, "S001-T07").TLS
	for _, c := range []struct {
		cert *tls.Certificate
		want int
	}{{nil, http.StatusUnauthorized}, {&till, http.StatusOK}} {
		tc := &tls.Config{RootCAs: ca.Pool()}
		if c.cert != nil {
			tc.Certificates = []tls.Certificate{*c.cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := client.Get("https://" + addr + "/v1/till/feed")
		if err != nil {
			t.Fatalf("HTTPS request: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("feed with certificate %v: %s, want %d", c.cert != nil, resp.Status, c.want)
		}
	}
}

// TestServeMetricsListen: with -metrics-listen, serve answers GET /metrics
// and /healthz there, unauthenticated; the API's address answers /healthz
// but not /metrics; an address it cannot listen on is an error at start.
func TestServeMetricsListen(t *testing.T) {
	dsn := pgtest.DSN(t)
	t.Setenv("HEADOFFICE_ERP_TOKEN", "0123456789abcdef")
	args := []string{"serve", "-dsn", dsn, "-listen", "127.0.0.1:0", "-offline-card-cap", "500"}
	if err := run(context.Background(), append(slices.Clone(args), "-metrics-listen", "256.0.0.1:1"), io.Discard,
		func(listening) { t.Error("started serving") }); err == nil || !strings.Contains(err.Error(), "-metrics-listen") {
		t.Errorf("an address it cannot listen on: %v, want an error naming -metrics-listen", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	at, done := make(chan listening, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, append(slices.Clone(args), "-metrics-listen", "127.0.0.1:0"), io.Discard, func(l listening) { at <- l })
	}()
	var l listening
	select {
	case l = <-at:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if l.metrics == "" || l.metrics == l.api {
		t.Fatalf("listening on %+v, want a metrics address of its own", l)
	}
	get(l.api, "/healthz")
	if code, body := get(l.metrics, "/metrics"); code != 200 || !strings.Contains(body, `headoffice_http_requests_total{route="GET /healthz",code="200"} 1`) ||
		!strings.Contains(body, "headoffice_db_pool_max_conns 16") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, body := get(l.metrics, "/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("health on the metrics address: %d %s", code, body)
	}
	if code, _ := get(l.api, "/metrics"); code != 404 {
		t.Errorf("/metrics on the API's address: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

// TestTillsCommand: `headoffice tills` lists every till, never heard from
// first, then the longest silent, retired ones last; -silent keeps those
// not heard from for that long (or never), without the retired.
func TestTillsCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"import", "-dsn", dsn, "../../testdata/demo/replica.yaml"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"S001-T01", "S001-T02", "S001-T03", "S001-T04"} {
		if err := run(ctx, []string{"enrol", "-dsn", dsn, "-till", id, "-store", "S001"}, io.Discard, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(ctx, []string{"retire", "-dsn", dsn, "-till", "S001-T04"}, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO till_seen (till_id, last_seen_at, last_agent)
		VALUES ('S001-T01', now() - interval '2 hours', 'tillagent/1.4.0'), ('S001-T02', now() - interval '3 days', 'tillagent/1.4.0')`); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) []string {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"tills", "-dsn", dsn}, args...), &out, nil); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
			ids = append(ids, strings.Fields(l)[0])
		}
		return ids
	}
	if got := strings.Join(list(), " "); got != "S001-T03 S001-T02 S001-T01 S001-T04" {
		t.Errorf("tills: %s, want never heard from, longest silent, then retired:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "tillagent/1.4.0") || !strings.Contains(out.String(), "never") || !strings.Contains(out.String(), "retired ") {
		t.Errorf("tills output lacks the agent, a never, or a retired mark:\n%s", out.String())
	}
	if got := strings.Join(list("-silent", "24h"), " "); got != "S001-T03 S001-T02" {
		t.Errorf("tills -silent 24h: %s, want the one never heard from and the one silent 3 days", got)
	}
	if err := run(ctx, []string{"tills", "-dsn", dsn, "-silent", "-1h"}, io.Discard, nil); err == nil {
		t.Error("tills -silent -1h: no error")
	}
}
