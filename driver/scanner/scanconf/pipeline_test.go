package scanconf

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/creack/pty"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/internal/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type keys map[uint16]ed25519.PublicKey

func (k keys) CardKey(_ context.Context, id uint16) (classify.Key, error) {
	p, ok := k[id]
	if !ok {
		return classify.Key{}, classify.ErrUnknownKey
	}
	return classify.Key{Public: p}, nil
}

var priv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))

// pipeline is the agent's scanner path as tillagent wires it: config →
// serial driver on a pty → Stream → Classifier.
type pipeline struct {
	master *os.File
	scans  <-chan scanner.Scan
	cl     *classify.Classifier
	cancel context.CancelFunc
}

func newPipeline(tb testing.TB) *pipeline {
	tb.Helper()
	m, s, err := pty.Open()
	if err != nil {
		tb.Skipf("no pty: %v", err)
	}
	c := config.Default()
	c.Scanners = []config.Scanner{{Name: "counter", Type: "serial", Port: s.Name(), Baud: 115200, Framing: "crlf"}}
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan struct{}, 1)
	scans := scanner.Stream(ctx, c.Classify.DuplicateWindow, func(h scanner.Health) {
		if h.Code == scanner.CodeOK {
			up <- struct{}{}
		}
	}, Drivers(c.Scanners, quiet)...)
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		tb.Fatal("scanner did not open")
	}
	p := &pipeline{master: m, scans: scans, cancel: cancel,
		cl: Classifier(c.Classify, keys{1: priv.Public().(ed25519.PublicKey)}, nil)}
	tb.Cleanup(func() {
		cancel()
		for range scans {
		}
		m.Close()
		s.Close()
	})
	return p
}

func TestPipelineEndToEnd(t *testing.T) {
	p := newPipeline(t)
	window := uint32(time.Now().Unix() / 60)
	inputs := []string{
		"]E02770000000017\r\n",
		"]d20104601234567893215ABC\x1d93XY1\r\n",
		"]Q1" + classify.SignToken(priv, 1, 2770000000017, window) + "\r\n",
		"]Q1" + classify.SignToken(priv, 1, 2770000000017, window) + "\r\n", // re-read at once: duplicate
	}
	var got []string
	for _, in := range inputs {
		if _, err := p.master.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-p.scans:
			r := p.cl.Classify(context.Background(), s)
			got = append(got, fmt.Sprintf("%s %s%s dup=%v", r.Kind, r.Card, scanner.Printable([]byte(r.Code)), r.Duplicate))
		case <-time.After(10 * time.Second):
			t.Fatal("no scan")
		}
	}
	want := []string{
		"loyalty_card 2770000000017 dup=false",
		"product 0104601234567893215ABC<GS>93XY1 dup=false",
		"signed_card 2770000000017 dup=false",
		"signed_card 2770000000017 dup=true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// BenchmarkSerialScanToClassified measures, for every scan, the time from
// the moment the last byte has been written to the pty master to the moment
// the classified result is in hand. Half the scans are EAN-13 product
// codes, half signed virtual-card tokens (Ed25519 verification, the slow
// path). Reports p50, p99 and max in microseconds.
func BenchmarkSerialScanToClassified(b *testing.B) {
	p := newPipeline(b)
	window := uint32(time.Now().Unix() / 60)
	msgs := make([][]byte, b.N)
	for i := range msgs {
		if i%2 == 0 {
			msgs[i] = []byte("]E04601234567893\r\n")
		} else {
			msgs[i] = []byte("]Q1" + classify.SignToken(priv, 1, uint64(1_000_000+i), window) + "\r\n")
		}
	}
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.master.Write(msgs[i]); err != nil {
			b.Fatal(err)
		}
		written := time.Now()
		s := <-p.scans
		r := p.cl.Classify(ctx, s)
		lat = append(lat, time.Since(written))
		if r.Kind != classify.KindProduct && r.Kind != classify.KindSignedCard {
			b.Fatalf("scan %d: %s %s %v", i, r.Kind, r.Reason, r.Err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(1), "max-µs")
}

// TestDefaultClassify: with the shipped defaults, the chain's in-store card
// numbers (26–29) are cards and weighed-goods labels (20–25) are products.
func TestDefaultClassify(t *testing.T) {
	cl := Classifier(config.DefaultClassify(), keys{}, nil)
	for raw, want := range map[string]string{
		"]E02700000000014": "loyalty_card 2700000000014",
		"]E02900000000011": "rejected ", // card-shaped, bad check digit: never a product
		"]E02212345012343": "product ",  // scale label
		"]E02500000123450": "product ",
		"]E04601234567893": "product ",
	} {
		aim, sym := scanner.SplitAIM([]byte(raw))
		r := cl.Classify(context.Background(), scanner.Scan{Raw: []byte(raw), AIM: aim, Symbology: sym})
		if got := fmt.Sprintf("%s %s", r.Kind, r.Card); got != want {
			t.Errorf("%s: got %q, want %q", raw, got, want)
		}
	}
}
