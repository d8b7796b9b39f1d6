// Package emulator is a Shtrih-M fiscal printer in software: the link layer
// of the spec's handshake table, the shift and receipt state machine, a fiscal
// storage with document numbers and fiscal signs, an electronic journal, line
// speed throttling and fault injection. Serve it on the master of a pty and
// any Shtrih-M client can talk to the slave as to a real device.
package emulator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"tillagent/driver/fiscal/shtrih"
)

// Config sets the emulated device up. Zero values take the defaults noted.
type Config struct {
	// Baud is the line speed; with Throttle the emulator paces both directions
	// to it (a pty delivers instantly). Default 115200.
	Baud     int
	Throttle bool
	// ByteTimeout is the device's T_byte: an incomplete frame is discarded
	// after it (default 50 ms; keep it below the host's).
	ByteTimeout time.Duration
	// SysAdminPassword (default 30) and AdminPassword (default 29).
	SysAdminPassword, AdminPassword uint32
	// DenyZeroReceipt makes a zero-total receipt fail with 8Eh (device table 1 field 23).
	DenyZeroReceipt bool
	FNSerial        string // default 9287440301120991
	Serial          uint32 // device serial number, default 12345678
	INN             uint64 // default 7701234567
	LastFD          uint32 // last FD in the FN at start
	// Journal is the FN's documents at start (ReadJournal of an earlier
	// run): a restarted emulator keeps its fiscal memory, as a device does
	// across a power cycle, so Resolve after a crash finds the receipt.
	Journal []Doc
	// PrintTime is how long the device prints after a printing command
	// (submode 5, commands answer 50h meanwhile). Default 0.
	PrintTime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Seed drives random faults.
	Seed uint64
	// JournalPath: the journal is rewritten there after every fiscal document.
	JournalPath string
	Logger      *slog.Logger
}

// FaultKind is a one-shot fault bound to a command.
type FaultKind int

// Faults. "Before"/"after" are relative to executing the command.
const (
	FaultNAK               FaultKind = iota + 1 // answer the frame with NAK, do not execute
	FaultSilence                                // ignore the frame entirely
	FaultDropACK                                // execute but do not send the ACK byte
	FaultLoseAnswer                             // ACK and execute, send no answer (the host must ENQ)
	FaultBadLRC                                 // send the answer with a corrupted LRC once
	FaultDropAnswerByte                         // drop one byte of the answer once
	FaultDelay                                  // delay the answer by Fault.Delay
	FaultPowerCutBefore                         // lose power after receiving the frame
	FaultPowerCutAfter                          // lose power after executing, before answering
	FaultPaperOut                               // paper runs out while the command prints
	FaultBusy                                   // answer 50h once (still printing)
	FaultSlowENQ                                // reply to the Skip+1-th ENQ only after Fault.Delay (a device late under load)
	FaultDropFrameByte                          // one byte of the host's frame is lost on the line
	FaultPowerCutMidAnswer                      // lose power after executing, half-way through sending the answer
)

var faultNames = map[string]FaultKind{
	"nak": FaultNAK, "silence": FaultSilence, "drop_ack": FaultDropACK, "lose_answer": FaultLoseAnswer,
	"bad_lrc": FaultBadLRC, "drop_answer_byte": FaultDropAnswerByte, "delay": FaultDelay,
	"power_cut_before": FaultPowerCutBefore, "power_cut_after": FaultPowerCutAfter,
	"paper_out": FaultPaperOut, "busy": FaultBusy, "slow_enq": FaultSlowENQ,
	"drop_frame_byte": FaultDropFrameByte, "power_cut_mid_answer": FaultPowerCutMidAnswer,
}

// ParseFault reads a fault name as the command line writes it ("paper_out").
func ParseFault(s string) (FaultKind, bool) { k, ok := faultNames[s]; return k, ok }

// Fault is a one-shot fault: it fires on the Skip+1-th received command with
// code Cmd (0: any command).
type Fault struct {
	Kind        FaultKind
	Cmd         uint16
	Skip        int
	Delay       time.Duration // FaultDelay
	PowerOffFor time.Duration // power cuts: 0 = until PowerOn
}

// Random are per-event fault probabilities.
type Random struct {
	DropIn, DropOut float64 // per byte received / sent
	BadLRC          float64 // per answer frame
	NAK, Silence    float64 // per command frame received
	LoseAnswer      float64 // per command executed
	Delay           float64 // per answer, delayed by DelayFor
	DelayFor        time.Duration
	PowerCut        float64 // per command, before or after executing; off for PowerOffFor
	PowerOffFor     time.Duration
}

// Stats are the emulator's counters, for the benchmark's wire floor.
type Stats struct {
	BytesIn, BytesOut int64
	Busy              time.Duration // time spent executing commands (not sleeping)
	Commands          int
}

// Emulator is one emulated printer. Its methods are safe to call while it serves.
type Emulator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	rng    *rand.Rand
	dev    device
	faults []Fault
	random Random
	stats  Stats

	// link state
	pending   []byte // last answer frame, until the host ACKs it
	powered   bool
	offUntil  time.Time // zero: off until PowerOn
	lineClock time.Time
	byteTime  time.Duration
}

// New returns a powered-on printer with the shift closed.
func New(cfg Config) *Emulator {
	if cfg.Baud == 0 {
		cfg.Baud = 115200
	}
	if cfg.ByteTimeout == 0 {
		cfg.ByteTimeout = 50 * time.Millisecond
	}
	if cfg.SysAdminPassword == 0 {
		cfg.SysAdminPassword = 30
	}
	if cfg.AdminPassword == 0 {
		cfg.AdminPassword = 29
	}
	if cfg.FNSerial == "" {
		cfg.FNSerial = "9287440301120991"
	}
	if cfg.Serial == 0 {
		cfg.Serial = 12345678
	}
	if cfg.INN == 0 {
		cfg.INN = 7701234567
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{cfg: cfg, log: cfg.Logger, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9E3779B97F4A7C15)), powered: true}
	e.byteTime = time.Duration(10 * int64(time.Second) / int64(cfg.Baud))
	e.dev = newDevice(&e.cfg)
	return e
}

// Inject queues one-shot faults.
func (e *Emulator) Inject(f ...Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, f...)
}

// SetRandom sets random fault probabilities (zero value: none).
func (e *Emulator) SetRandom(r Random) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.random = r
}

// PowerCut switches the device off: the pending answer is lost, the FN and an
// open receipt survive. for > 0 switches it back on after that time.
func (e *Emulator) PowerCut(for_ time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.powerCutLocked(for_)
}

func (e *Emulator) powerCutLocked(for_ time.Duration) {
	e.powered = false
	e.pending = nil
	e.offUntil = time.Time{}
	if for_ > 0 {
		e.offUntil = time.Now().Add(for_)
	}
	e.dev.powerCut()
}

// PowerOn switches the device back on.
func (e *Emulator) PowerOn() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.powered = true
}

// Powered reports whether the device is on.
func (e *Emulator) Powered() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.checkPowerLocked()
	return e.powered
}

func (e *Emulator) checkPowerLocked() {
	if !e.powered && !e.offUntil.IsZero() && !time.Now().Before(e.offUntil) {
		e.powered = true
	}
}

// PaperOut removes the paper (passive paper-out, submode 1).
func (e *Emulator) PaperOut() { e.mu.Lock(); e.dev.paperOut(false); e.mu.Unlock() }

// LoadPaper loads paper; an interrupted printout then waits for B0h (submode 3).
func (e *Emulator) LoadPaper() { e.mu.Lock(); e.dev.loadPaper(); e.mu.Unlock() }

// PaperPresent reports whether the receipt roll has paper.
func (e *Emulator) PaperPresent() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.dev.paper }

// SetCover opens or closes the cover.
func (e *Emulator) SetCover(open bool) { e.mu.Lock(); e.dev.cover = open; e.mu.Unlock() }

// ExpireShift makes the open shift older than 24 h (mode 3).
func (e *Emulator) ExpireShift() { e.mu.Lock(); e.dev.expired = e.dev.shiftOpen; e.mu.Unlock() }

// SetFNWarnings sets the FN warning bits of FF01.
func (e *Emulator) SetFNWarnings(w byte) { e.mu.Lock(); e.dev.warnings = w; e.mu.Unlock() }

// Journal returns a copy of the electronic journal.
func (e *Emulator) Journal() []Doc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Doc(nil), e.dev.journal...)
}

// Stats returns the counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// ResetStats zeroes the counters.
func (e *Emulator) ResetStats() { e.mu.Lock(); e.stats = Stats{}; e.mu.Unlock() }

// LastFD is the FN's last fiscal document number.
func (e *Emulator) LastFD() uint32 { e.mu.Lock(); defer e.mu.Unlock(); return e.dev.lastFD }

// Serve runs the device on rw until ctx ends or rw fails.
func (e *Emulator) Serve(ctx context.Context, rw io.ReadWriter) error {
	in := make(chan []byte, 64)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				in <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				errc <- err
				close(in)
				return
			}
		}
	}()
	l := &link{e: e, rw: rw, in: in, ctx: ctx}
	err := l.run()
	if ctx.Err() != nil {
		return nil
	}
	select {
	case rerr := <-errc:
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		return rerr
	default:
	}
	return err
}

var errIdle = errors.New("byte timeout")

type link struct {
	e    *Emulator
	rw   io.ReadWriter
	in   chan []byte
	ctx  context.Context
	pend []byte
}

// next returns the next byte, waiting up to d (0: forever). It accounts the
// time the byte takes on the line when throttling.
func (l *link) next(d time.Duration) (byte, error) {
	for len(l.pend) == 0 {
		var tc <-chan time.Time
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			tc = t.C
		}
		select {
		case c, ok := <-l.in:
			if !ok {
				return 0, io.EOF
			}
			l.e.mu.Lock()
			l.e.stats.BytesIn += int64(len(c))
			if l.e.cfg.Throttle {
				now := time.Now()
				if l.e.lineClock.Before(now) {
					l.e.lineClock = now
				}
				l.e.lineClock = l.e.lineClock.Add(time.Duration(len(c)) * l.e.byteTime)
			}
			drop := l.e.random.DropIn
			powered := l.e.powered
			l.e.checkPowerLocked()
			powered = powered || l.e.powered
			if drop > 0 {
				kept := c[:0:0]
				for _, b := range c {
					if l.e.rng.Float64() >= drop {
						kept = append(kept, b)
					}
				}
				c = kept
			}
			l.e.mu.Unlock()
			if !powered {
				continue // a dead device hears nothing
			}
			l.pend = c
		case <-tc:
			return 0, errIdle
		case <-l.ctx.Done():
			return 0, l.ctx.Err()
		}
	}
	b := l.pend[0]
	l.pend = l.pend[1:]
	return b, nil
}

// send writes to the host, paced to the line speed when throttling.
func (l *link) send(b []byte) error {
	e := l.e
	e.mu.Lock()
	if !e.powered {
		e.mu.Unlock()
		return nil
	}
	if d := e.random.DropOut; d > 0 {
		kept := make([]byte, 0, len(b))
		for _, c := range b {
			if e.rng.Float64() >= d {
				kept = append(kept, c)
			}
		}
		b = kept
	}
	e.stats.BytesOut += int64(len(b))
	var until time.Time
	if e.cfg.Throttle {
		now := time.Now()
		if e.lineClock.Before(now) {
			e.lineClock = now
		}
		e.lineClock = e.lineClock.Add(time.Duration(len(b)) * e.byteTime)
		until = e.lineClock
	}
	e.mu.Unlock()
	if !until.IsZero() {
		// The host sees the bytes when the last one would have arrived.
		waitUntil(until)
	}
	_, err := l.rw.Write(b)
	return err
}

// waitLine waits until the bytes received so far would have crossed the line.
func (l *link) waitLine() {
	l.e.mu.Lock()
	until := l.e.lineClock
	throttle := l.e.cfg.Throttle
	l.e.mu.Unlock()
	if throttle {
		waitUntil(until)
	}
}

// waitUntil sleeps to t precisely: timer sleeps overshoot by up to a
// millisecond, which at 115200 baud is 11 bytes, so the last stretch spins.
func waitUntil(t time.Time) {
	for {
		d := time.Until(t)
		switch {
		case d <= 0:
			return
		case d > 2*time.Millisecond:
			time.Sleep(d - 1500*time.Microsecond)
		default:
			runtime.Gosched()
		}
	}
}

func (l *link) run() error {
	e := l.e
	for {
		b, err := l.next(0)
		if err != nil {
			return err
		}
		switch b {
		case shtrih.ENQ:
			e.mu.Lock()
			p := e.pending
			var slow time.Duration
			for i, f := range e.faults {
				if f.Kind == FaultSlowENQ {
					if f.Skip > 0 {
						e.faults[i].Skip--
						break
					}
					slow = f.Delay
					e.faults = append(e.faults[:i], e.faults[i+1:]...)
					break
				}
			}
			e.mu.Unlock()
			time.Sleep(slow)
			e.log.Debug("ENQ", "pending", p != nil)
			l.waitLine()
			if p == nil {
				err = l.send([]byte{shtrih.NAK})
			} else {
				err = l.send([]byte{shtrih.ACK})
				if err == nil {
					err = l.sendAnswer(p, 0)
				}
			}
		case shtrih.ACK:
			e.log.Debug("ACK")
			e.mu.Lock()
			e.pending = nil
			e.mu.Unlock()
		case shtrih.STX:
			err = l.frame()
		default:
			e.log.Debug("other byte", "b", b)
			// NAK keeps the pending answer (resent only after ENQ); garbage is ignored.
		}
		if err != nil {
			return err
		}
	}
}

// sendAnswer sends an answer frame, applying answer faults.
func (l *link) sendAnswer(frame []byte, kind FaultKind) error {
	e := l.e
	f := append([]byte(nil), frame...)
	e.mu.Lock()
	if kind == 0 && e.random.BadLRC > 0 && e.rng.Float64() < e.random.BadLRC {
		kind = FaultBadLRC
	}
	var delay time.Duration
	if kind == 0 && e.random.Delay > 0 && e.rng.Float64() < e.random.Delay {
		delay = e.random.DelayFor
	}
	pos := 1 + e.rng.IntN(len(f)-1)
	e.mu.Unlock()
	switch kind {
	case FaultBadLRC:
		f[len(f)-1] ^= 0x5A
	case FaultDropAnswerByte:
		f = append(f[:pos], f[pos+1:]...)
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	return l.send(f)
}

// takeFault returns the first queued fault matching cmd, consuming it.
func (e *Emulator) takeFault(cmd uint16) (Fault, bool) {
	for i, f := range e.faults {
		if f.Kind == FaultSlowENQ || f.Kind == FaultDropFrameByte || f.Cmd != 0 && f.Cmd != cmd {
			continue
		}
		if f.Skip > 0 {
			e.faults[i].Skip--
			continue
		}
		e.faults = append(e.faults[:i], e.faults[i+1:]...)
		return f, true
	}
	return Fault{}, false
}

// dropFrameByte applies a FaultDropFrameByte for the frame's command: one
// byte of body never arrived, so the device waits for one more byte (the
// host's next ENQ, typically, which then fails the LRC) or, after its
// T_byte, discards the frame. It returns body unchanged without the fault
// and nil when the frame was discarded.
func (l *link) dropFrameByte(body []byte) ([]byte, error) {
	e := l.e
	if len(body) < 3 {
		return body, nil
	}
	cmd, _, _ := shtrih.SplitCmd(body[1 : len(body)-1])
	e.mu.Lock()
	hit := false
	for i, f := range e.faults {
		if f.Kind != FaultDropFrameByte || f.Cmd != 0 && f.Cmd != cmd {
			continue
		}
		if f.Skip > 0 {
			e.faults[i].Skip--
			continue
		}
		e.faults = append(e.faults[:i], e.faults[i+1:]...)
		hit = true
		break
	}
	pos := 1 + e.rng.IntN(len(body)-1)
	e.mu.Unlock()
	if !hit {
		return body, nil
	}
	body = append(append([]byte(nil), body[:pos]...), body[pos+1:]...)
	b, err := l.next(e.cfg.ByteTimeout)
	if errors.Is(err, errIdle) {
		e.log.Debug("incomplete frame discarded (byte dropped)")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return append(body, b), nil
}

// frame reads the rest of a frame after STX and reacts per §3.2.
func (l *link) frame() error {
	e := l.e
	n, err := l.next(e.cfg.ByteTimeout)
	if errors.Is(err, errIdle) {
		return nil
	}
	if err != nil {
		return err
	}
	body := make([]byte, 0, int(n)+2)
	body = append(body, n)
	for len(body) < int(n)+2 {
		b, err := l.next(e.cfg.ByteTimeout)
		if errors.Is(err, errIdle) {
			e.log.Debug("incomplete frame discarded", "have", len(body), "want", int(n)+2)
			return nil // incomplete frame: discard silently
		}
		if err != nil {
			return err
		}
		body = append(body, b)
	}
	body, err = l.dropFrameByte(body)
	if err != nil || body == nil {
		return err // nil: the frame stayed incomplete and was discarded silently
	}
	l.waitLine()
	if n == 0 || shtrih.LRC(body[:len(body)-1]) != body[len(body)-1] {
		e.log.Debug("bad LRC", "frame", body)
		return l.send([]byte{shtrih.NAK})
	}
	payload := body[1 : len(body)-1]
	cmd, _, _ := shtrih.SplitCmd(payload)
	e.log.Debug("frame", "cmd", shtrih.CmdName(cmd))

	e.mu.Lock()
	f, ok := e.takeFault(cmd)
	if !ok {
		r := e.random
		switch x := e.rng.Float64(); {
		case r.NAK > 0 && x < r.NAK:
			f, ok = Fault{Kind: FaultNAK}, true
		case r.Silence > 0 && x < r.NAK+r.Silence:
			f, ok = Fault{Kind: FaultSilence}, true
		case r.LoseAnswer > 0 && x < r.NAK+r.Silence+r.LoseAnswer:
			f, ok = Fault{Kind: FaultLoseAnswer}, true
		case r.PowerCut > 0 && x < r.NAK+r.Silence+r.LoseAnswer+r.PowerCut:
			k := FaultPowerCutBefore
			if e.rng.IntN(2) == 1 {
				k = FaultPowerCutAfter
			}
			f, ok = Fault{Kind: k, PowerOffFor: r.PowerOffFor}, true
		}
	}
	e.mu.Unlock()

	switch f.Kind {
	case FaultNAK:
		return l.send([]byte{shtrih.NAK})
	case FaultSilence:
		return nil
	case FaultPowerCutBefore:
		e.PowerCut(f.PowerOffFor)
		return nil
	}
	if f.Kind != FaultDropACK {
		if err := l.send([]byte{shtrih.ACK}); err != nil {
			return err
		}
	}
	start := time.Now()
	e.mu.Lock()
	if f.Kind == FaultBusy {
		ans := append(shtrih.CmdBytes(cmd), 0x50)
		e.pending, _ = shtrih.EncodeFrame(ans)
	} else {
		ans := e.dev.execute(payload, f.Kind == FaultPaperOut)
		e.pending, _ = shtrih.EncodeFrame(ans)
	}
	p := e.pending
	e.stats.Commands++
	e.stats.Busy += time.Since(start)
	if f.Kind == FaultPowerCutAfter {
		e.powerCutLocked(f.PowerOffFor)
	}
	e.dev.flushJournal()
	e.mu.Unlock()
	switch f.Kind {
	case FaultPowerCutAfter, FaultLoseAnswer:
		return nil
	case FaultPowerCutMidAnswer:
		err := l.send(p[:len(p)/2])
		e.PowerCut(f.PowerOffFor)
		return err
	case FaultDelay:
		time.Sleep(f.Delay)
	}
	return l.sendAnswer(p, f.Kind)
}
