package scanner

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Driver is one configured scanner. Run reads until ctx ends, reopening the
// device after every failure; it sends each scan on out (or drops it with a
// CodeQueueFull report when out is full, because a stale scan delivered late
// is worse than a beep-less rescan) and reports health transitions.
type Driver interface {
	Name() string
	Run(ctx context.Context, out chan<- Scan, report func(Health))
}

// Session is one open period of a device: it opens, calls up once the device
// is open, reads until an error or ctx ends, and closes what it opened.
type Session func(ctx context.Context, up func()) error

// Backoff bounds the wait between reopen attempts.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff: fast enough that a replugged scanner is back before the
// cashier notices, slow enough not to spin on enumeration (which touches
// every USB HID device).
var DefaultBackoff = Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second}

// Supervise runs session again and again until ctx ends, with capped
// exponential backoff between failures; the wait restarts from Min after a
// session that got the device open. Health is reported only on change, so
// an unplugged scanner produces one report, not one per retry.
func Supervise(ctx context.Context, device string, b Backoff, log *slog.Logger, report func(Health), session Session) {
	if b.Min <= 0 {
		b = DefaultBackoff
	}
	var last Code
	send := func(h Health) {
		if h.Code == last {
			return
		}
		last = h.Code
		h.Device, h.At = device, time.Now()
		if h.Code == CodeOK || h.Code == CodeStopped {
			log.Info("scanner health", "code", h.Code)
		} else {
			log.Warn("scanner health", "code", h.Code, "err", h.Err)
		}
		if report != nil {
			report(h)
		}
	}
	wait := b.Min
	for {
		opened := false
		err := session(ctx, func() {
			opened = true
			send(Health{Code: CodeOK})
		})
		if ctx.Err() != nil {
			send(Health{Code: CodeStopped})
			return
		}
		code := CodeOf(err)
		if opened && code == CodeOpenFailed {
			code = CodeDisconnected
		}
		send(Health{Code: code, Err: err})
		if opened {
			wait = b.Min
		}
		fired, stop := newTimer(wait)
		select {
		case <-ctx.Done():
			stop()
			send(Health{Code: CodeStopped})
			return
		case <-fired:
		}
		wait = min(wait*2, b.Max)
	}
}

// newTimer is time.NewTimer; the backoff test records the waits through it.
var newTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Emit sends s on out without blocking; it reports false when out is full.
func Emit(ctx context.Context, out chan<- Scan, s Scan) bool {
	select {
	case out <- s:
		return true
	case <-ctx.Done():
		return false
	default:
		return false
	}
}

// Stream runs every driver in its own goroutine and merges their scans into
// one channel, closed once every driver has stopped after ctx ends. Scans of
// the same label from the same device within dupWindow are delivered with
// FlagDuplicate (marked, not lost; the classifier decides).
func Stream(ctx context.Context, dupWindow time.Duration, report func(Health), drivers ...Driver) <-chan Scan {
	in := make(chan Scan, 64)
	out := make(chan Scan, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	safeReport := func(h Health) {
		if report == nil {
			return
		}
		mu.Lock() // callers need not be goroutine-safe
		defer mu.Unlock()
		report(h)
	}
	for _, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Run(ctx, in, safeReport)
		}()
	}
	go func() {
		wg.Wait()
		close(in)
	}()
	go func() {
		defer close(out)
		d := NewDedup(dupWindow)
		for s := range in {
			d.Mark(&s)
			select {
			case out <- s:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// Dedup marks repeated labels per device.
type Dedup struct {
	window time.Duration
	last   map[string]Scan
}

func NewDedup(window time.Duration) *Dedup {
	return &Dedup{window: window, last: map[string]Scan{}}
}

// Mark sets FlagDuplicate on s if the same device delivered the same raw
// bytes less than the window before.
func (d *Dedup) Mark(s *Scan) {
	if d.window <= 0 {
		return
	}
	if p, ok := d.last[s.Device]; ok && string(p.Raw) == string(s.Raw) && s.At.Sub(p.At) < d.window {
		s.Flags |= FlagDuplicate
	}
	d.last[s.Device] = *s
}

// Deliver sends the good frames as scans and reports the bad ones as
// CodeFramingError events. Noise and discarded data are logged with their
// bytes made printable, so a technician can see what arrived.
func Deliver(ctx context.Context, log *slog.Logger, device string, t Transport, frames []Frame, out chan<- Scan, report func(Health)) {
	for _, f := range frames {
		if f.Err != nil {
			log.Warn("scan discarded", "device", device, "err", f.Err, "data", Printable(f.Data))
			if report != nil {
				report(Health{Device: device, Code: CodeFramingError, Err: f.Err, At: f.At})
			}
			continue
		}
		s := f.ToScan(device, t)
		if !Emit(ctx, out, s) && ctx.Err() == nil {
			log.Error("scan dropped: queue full", "device", device, "data", Printable(s.Raw))
			if report != nil {
				report(Health{Device: device, Code: CodeQueueFull, At: f.At})
			}
		}
	}
}
