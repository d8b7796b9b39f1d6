package shtrih_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.bug.st/serial"

	"tillagent/driver/fiscal"
	"tillagent/driver/fiscal/emulator"
	"tillagent/driver/fiscal/shtrih"
)

// rig is a driver talking to the emulator over a real pty opened with go.bug.st/serial.
type rig struct {
	em   *emulator.Emulator
	pty  *emulator.PTY
	port serial.Port
	drv  *shtrih.Driver
	opts rigOpts
}

type rigOpts struct {
	emu  emulator.Config
	drv  shtrih.Options
	baud int
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	if o.baud == 0 {
		o.baud = 921600
	}
	if o.emu.ByteTimeout == 0 {
		o.emu.ByteTimeout = 15 * time.Millisecond
	}
	o.emu.Baud = o.baud
	em := emulator.New(o.emu)
	p, err := emulator.ServePTY(context.Background(), em)
	if err != nil {
		t.Fatal(err)
	}
	port, err := serial.Open(p.Name, &serial.Mode{BaudRate: o.baud})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	if o.drv.ByteTimeout == 0 {
		o.drv.ByteTimeout = 50 * time.Millisecond
	}
	if o.drv.AnswerTimeout == 0 {
		o.drv.AnswerTimeout = 300 * time.Millisecond
	}
	if o.drv.BusyWait == 0 {
		o.drv.BusyWait = 5 * time.Millisecond
	}
	if o.drv.RetryPause == 0 {
		o.drv.RetryPause = 10 * time.Millisecond
	}
	o.drv.Baud = o.baud
	if o.drv.Logger == nil {
		o.drv.Logger = slog.New(slog.DiscardHandler)
	}
	r := &rig{em: em, pty: p, port: port, drv: shtrih.New(port, p.Name, o.drv), opts: o}
	t.Cleanup(func() {
		r.port.Close()
		p.Close()
	})
	return r
}

// reconnect is the agent coming back after a power loss: the old port is
// closed, the port is opened again and a fresh driver (no memory of the
// receipt but the journal's checkpoint) takes over.
func (r *rig) reconnect(t testing.TB) {
	t.Helper()
	r.port.Close()
	port, err := serial.Open(r.pty.Name, &serial.Mode{BaudRate: r.opts.baud})
	if err != nil {
		t.Fatal(err)
	}
	r.port, r.drv = port, shtrih.New(port, r.pty.Name, r.opts.drv)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// basket is the spec's §10.3 example.
func basket() []fiscal.PlainLine {
	return []fiscal.PlainLine{
		{Name: "Молоко", Qty: fiscal.Units(2), Price: 15000, VAT: fiscal.VAT20},
		{Name: "Хлеб", Qty: fiscal.Units(1), Price: 9990, VAT: fiscal.VAT10},
	}
}

// checkFFD asserts the FFD arithmetic on a journal receipt.
func checkFFD(t testing.TB, d emulator.Doc) {
	t.Helper()
	var sum int64
	for _, it := range d.Items {
		sum += it.T1043
		if dev := it.T1079*it.T1023 - it.T1043*1_000_000; dev > 1_000_000 || dev < -1_000_000 {
			t.Errorf("FD %d item %q: 1043 %d ≠ 1079 %d × 1023 %d ± 1", d.FD, it.T1030, it.T1043, it.T1079, it.T1023)
		}
	}
	if sum != d.T1020 {
		t.Errorf("FD %d: Σ1043 %d ≠ 1020 %d", d.FD, sum, d.T1020)
	}
	if p := d.T1031 + d.T1081 + d.T1215 + d.T1216 + d.T1217; p != d.T1020 {
		t.Errorf("FD %d: payments %d ≠ 1020 %d", d.FD, p, d.T1020)
	}
}
