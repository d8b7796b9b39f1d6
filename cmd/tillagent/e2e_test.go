package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
	"tillagent/internal/config"
)

// harness is one agent running in-process on a real Unix socket, its
// printer a Shtrih-M emulator on a real pty that the test controls.
type harness struct {
	t      testing.TB
	cfg    config.Config
	em     *emulator.Emulator
	http   *http.Client
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	main   *Main
	clock  func() time.Time
}

// testClock runs from the moment the demo data and docs use,
// 2026-11-23 12:00 Moscow time, so that no lot expires under the tests.
func testClock() func() time.Time {
	base := time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	start := time.Now()
	return func() time.Time { return base.Add(time.Since(start)) }
}

func newHarness(t testing.TB, mod func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, mod, nil)
}

// newHarnessWith is newHarness with the emulator's clock (nil: time.Now).
func newHarnessWith(t testing.TB, mod func(*config.Config), printerNow func() time.Time) *harness {
	t.Helper()
	dir := t.TempDir()
	em := emulator.New(emulator.Config{Baud: 115200, JournalPath: filepath.Join(dir, "fiscal.json"), Now: printerNow})
	pt, err := emulator.ServePTY(context.Background(), em)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { pt.Close() })
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "till.db")
	cfg.Store.DemoReplica = "../../testdata/demo/replica.yaml"
	cfg.API.Socket = filepath.Join(dir, "api.sock")
	cfg.Printer.Type, cfg.Printer.Port = "shtrih", pt.Name
	cfg.Log.Level = "warn"
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, em: em, logs: &syncBuffer{}, clock: testClock(), http: unixClient(cfg.API.Socket)}
	h.start()
	t.Cleanup(h.stop)
	return h
}

// unixClient talks HTTP over the agent's Unix socket.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func (h *harness) start() {
	h.t.Helper()
	cfg := h.cfg
	h.main = &Main{Config: &cfg, LogOutput: h.logs, Ready: make(chan struct{}), Clock: h.clock}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.main.Run(ctx) }()
	select {
	case <-h.main.Ready:
	case err := <-h.done:
		h.t.Fatalf("agent stopped: %v\n%s", err, h.logs.String())
	case <-time.After(30 * time.Second):
		h.t.Fatalf("agent not ready\n%s", h.logs.String())
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("agent run: %v", err)
	}
	h.cancel = nil
}

// do sends a request over the socket and decodes a JSON answer into out
// (if not nil); it returns the status and the raw body.
func (h *harness) do(method, path string, body any, out any, hdr ...string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, "http://localhost"+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, b
}

// must is do that fails the test unless the status is want.
func (h *harness) must(want int, method, path string, body, out any, hdr ...string) []byte {
	h.t.Helper()
	st, b := h.do(method, path, body, out, hdr...)
	if st != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
	return b
}

// apiError is the error body.
type apiError struct {
	Error struct{ Code, Message, Detail, Hint string }
}

func (h *harness) refusal(wantStatus int, wantCode, method, path string, body any, hdr ...string) apiError {
	h.t.Helper()
	st, b := h.do(method, path, body, nil, hdr...)
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil {
		h.t.Fatalf("%s %s: error body is not JSON: %s", method, path, b)
	}
	if st != wantStatus || e.Error.Code != wantCode {
		h.t.Fatalf("%s %s: got %d %s, want %d %s: %s", method, path, st, e.Error.Code, wantStatus, wantCode, b)
	}
	if e.Error.Message == "" || e.Error.Detail == "" {
		h.t.Errorf("%s %s: error without a cashier message or a detail: %s", method, path, b)
	}
	return e
}

func (h *harness) receipts() []emulator.Doc {
	var out []emulator.Doc
	for _, d := range h.em.Journal() {
		if d.Kind == "receipt" {
			out = append(out, d)
		}
	}
	return out
}

// Answers, as far as the tests read them.
type saleAnswer struct {
	SaleID string `json:"sale_id"`
	Fiscal struct {
		FD     uint32 `json:"fd"`
		FP     uint32 `json:"fp"`
		Total  string `json:"total"`
		Change string `json:"change"`
	} `json:"fiscal"`
	Receipt struct {
		Total    string            `json:"total"`
		Payments map[string]string `json:"payments"`
		Lines    []struct{ Name, Qty, Price, Sum string }
	} `json:"receipt"`
	Quote struct {
		Payable  string `json:"payable"`
		Redeemed string `json:"redeemed"`
		Cards    []struct {
			Code, Accrued string
		} `json:"cards"`
	} `json:"quote"`
	Cards []struct {
		Code, Balance, Spendable string
	} `json:"cards"`
	Journal []string `json:"journal"`
}

type cardAnswer struct {
	Balance, Spendable, Pending string
}

func line(no int, product, qty, price string) map[string]any {
	return map[string]any{"no": no, "product_id": product, "qty": qty, "price": price}
}

func saleBody(key string, cards []string, redeem string, cash string, lines ...map[string]any) map[string]any {
	pay := map[string]any{}
	if cash != "" {
		pay["cash"] = cash
	}
	b := map[string]any{"idempotency_key": key, "check": map[string]any{"lines": lines}, "cards": cards, "payments": pay}
	if redeem != "" {
		b["redeem"] = redeem
	}
	return b
}

func docText(d emulator.Doc) string { return strings.Join(d.Text, "\n") }

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a whole number: %q", s)
	}
	return n
}

func fmtKop(k int64) string { return fmt.Sprintf("%d.%02d", k/100, k%100) }
