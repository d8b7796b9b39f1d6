package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/scanconf"
	"tillagent/internal/config"
	"tillagent/internal/store"
)

// demoSeed is the documented private seed of the demo replica's card key.
var demoSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

func scanConfig(t *testing.T, db string) config.Config {
	t.Helper()
	c, err := config.Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Store.Path = db
	return c
}

func tokenScan(token string) scanner.Scan {
	raw := "]Q1" + token
	aim, sym := scanner.SplitAIM([]byte(raw))
	return scanner.Scan{Device: "front", Raw: []byte(raw), AIM: aim, Symbology: sym}
}

// TestScanVerifiesTokensWithStoreKeys: with the demo replica imported, tillctl
// scan verifies a token signed with the demo key, as the agent would.
func TestScanVerifiesTokensWithStoreKeys(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "till.db")
	s, err := store.Open(ctx, store.Options{Path: db, TillID: "S001-T09"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportFile(ctx, demoReplica); err != nil {
		t.Fatal(err)
	}
	// Find the demo key by its public half rather than by id, so this does
	// not depend on which id the demo replica gives it.
	priv := ed25519.NewKeyFromSeed(demoSeed)
	pks, err := s.PublicKeys(ctx)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	var demo *store.PublicKey
	for i := range pks {
		if pks[i].Key.Equal(priv.Public()) {
			demo = &pks[i]
		}
	}
	if demo == nil {
		t.Fatalf("no key of the demo seed among %+v", pks)
	}

	c := scanConfig(t, db)
	var warn bytes.Buffer
	keys, closeKeys := cardKeys(ctx, &c, &warn)
	defer closeKeys()
	if strings.Contains(warn.String(), "warning") {
		t.Fatalf("unexpected warning: %s", warn.String())
	}
	// A fixed clock inside the key's validity: the demo key expires.
	now := demo.ValidFrom.Add(36 * time.Hour)
	cl := scanconf.Classifier(c.Classify, keys, func() time.Time { return now })
	win := uint32(now.Unix() / int64(c.Classify.TokenWindow/time.Second))

	token, err := classify.SignCard(priv, demo.ID, "2900000000013", win)
	if err != nil {
		t.Fatal(err)
	}
	r := cl.Classify(ctx, tokenScan(token))
	if r.Kind != classify.KindSignedCard || r.Card != "2900000000013" || r.Token == nil || r.Token.KeyID != demo.ID {
		t.Fatalf("demo token: %+v", r)
	}
	// Another issuer's signature under the demo key id is a forgery.
	_, other, _ := ed25519.GenerateKey(nil)
	r = cl.Classify(ctx, tokenScan(classify.SignToken(other, demo.ID, 2900000000020, win)))
	if r.Kind != classify.KindRejected || r.Reason != classify.ReasonBadSignature {
		t.Fatalf("forged token: %+v", r)
	}
	r = cl.Classify(ctx, tokenScan(classify.SignToken(priv, demo.ID+100, 2900000000020, win)))
	if r.Kind != classify.KindRejected || r.Reason != classify.ReasonUnknownKey {
		t.Fatalf("unknown key: %+v", r)
	}
}

// TestScanWithoutStore: a missing store is reported, not created, and tokens
// are rejected as a key lookup failure (retry), not as forgeries.
func TestScanWithoutStore(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "missing.db")
	c := scanConfig(t, db)
	var warn bytes.Buffer
	keys, closeKeys := cardKeys(ctx, &c, &warn)
	defer closeKeys()
	if !strings.Contains(warn.String(), "warning: store "+db+" does not exist") {
		t.Errorf("warning %q", warn.String())
	}
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("store file created or unreadable: %v", err)
	}
	priv := ed25519.NewKeyFromSeed(demoSeed)
	cl := scanconf.Classifier(c.Classify, keys, nil)
	r := cl.Classify(ctx, tokenScan(classify.SignToken(priv, 1, 2900000000013, uint32(time.Now().Unix()/60))))
	if r.Kind != classify.KindRejected || r.Reason != classify.ReasonKeyLookup || !strings.Contains(r.Err.Error(), "does not exist") {
		t.Fatalf("token without store: %+v", r)
	}
}

// TestScanBrokenStore: a file that is no database is reported, and the
// command goes on without keys.
func TestScanBrokenStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "till.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte("not sqlite "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	c := scanConfig(t, db)
	var warn bytes.Buffer
	keys, closeKeys := cardKeys(context.Background(), &c, &warn)
	defer closeKeys()
	if _, ok := keys.(noKeys); !ok || !strings.Contains(warn.String(), "warning: open store "+db) {
		t.Errorf("keys %T, warning %q", keys, warn.String())
	}
}

// TestScanLive runs `tillctl scan -port` against a serial scanner on a real
// pty: the scans show up on stdout, classified, with GS visible, until the
// context ends.
func TestScanLive(t *testing.T) {
	m, sl, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer m.Close()
	defer sl.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			mu.Lock()
			out.Write(b[:n])
			mu.Unlock()
			if err != nil {
				close(copied)
				return
			}
		}
	}()
	old := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = old }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runScan(ctx, []string{"-config", "../../config.example.yaml", "-port", sl.Name(), "-framing", "crlf", "-baud", "115200"})
	}()
	scans := "]d20104601234567893215ABC\x1d93XY1\r\n]E02700000000014\r\n]E02900000000011\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Write until the driver has the port open and the scans come out.
		if _, err := io.WriteString(m, scans); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		got := out.String()
		mu.Unlock()
		if strings.Contains(got, "reason=bad_check_digit") || time.Now().After(deadline) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	os.Stdout = old
	w.Close()
	<-copied
	got := out.String()
	for _, want := range []string{"serial       gs1-datamatrix upos=208 aim=]d2", "0104601234567893215ABC<GS>93XY1",
		"-> product code 0104601234567893215ABC<GS>93XY1 (gs1)", "aim=]E0", "-> loyalty_card card 2700000000014",
		"-> rejected  reason=bad_check_digit"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}

func TestScanNoSuchScanner(t *testing.T) {
	err := runScan(context.Background(), []string{"-config", "../../config.example.yaml", "-name", "front"})
	if err == nil || !strings.Contains(err.Error(), `no scanner named "front"`) {
		t.Errorf("got %v", err)
	}
	err = runScan(context.Background(), []string{"-config", "../../config.example.yaml", "-port", "/dev/ttyS0", "-framing", "semicolon"})
	if err == nil || !strings.Contains(err.Error(), "semicolon") {
		t.Errorf("bad framing: %v", err)
	}
}
