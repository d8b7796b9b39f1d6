package serialscan

import (
	"errors"
	"fmt"
	"time"

	"tillagent/driver/scanner"
)

// Framing is how messages are delimited on the line.
type Framing string

const (
	FramingCR     Framing = "cr"      // data CR
	FramingLF     Framing = "lf"      // data LF
	FramingCRLF   Framing = "crlf"    // data CR LF (never two scans)
	FramingSTXETX Framing = "stx_etx" // STX data ETX
	FramingGap    Framing = "gap"     // no terminator: the message ends after Gap of silence
)

const (
	stx = 0x02
	etx = 0x03
	cr  = '\r'
	lf  = '\n'
)

// Errors in Frame.Err.
var (
	ErrOverflow     = errors.New("message longer than the maximum, discarded")
	ErrUnterminated = errors.New("no terminator before the line went silent, discarded")
	ErrGarbage      = errors.New("bytes outside STX…ETX, discarded")
)

// FramerConfig configures a Framer.
type FramerConfig struct {
	Framing Framing
	// Gap: silence that ends a message (gap framing) or discards an
	// unterminated one (other framings). Default max(50 ms, 30 character times).
	Gap time.Duration
	// MaxLen caps a message. Default 8 KiB.
	MaxLen int
}

// DefaultGap is max(50 ms, 30 character times at baud, 10 bits a character).
func DefaultGap(baud int) time.Duration {
	if baud <= 0 {
		baud = 9600
	}
	return max(50*time.Millisecond, time.Duration(30*10)*time.Second/time.Duration(baud))
}

// Framer splits a serial byte stream into messages. Pure: time is passed in,
// so tests need no clock. Not safe for concurrent use.
type Framer struct {
	cfg     FramerConfig
	buf     []byte
	inFrame bool // stx_etx: between STX and ETX
	garbage []byte
	over    bool
	last    time.Time
}

func NewFramer(cfg FramerConfig) *Framer {
	if cfg.Framing == "" {
		cfg.Framing = FramingCR
	}
	if cfg.Gap <= 0 {
		cfg.Gap = DefaultGap(9600)
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = 8 << 10
	}
	return &Framer{cfg: cfg}
}

// Feed adds bytes read at at and returns the completed messages.
func (f *Framer) Feed(p []byte, at time.Time) []scanner.Frame {
	out := f.Flush(at)
	for _, c := range p {
		out = f.byte(out, c, at)
	}
	if len(p) > 0 {
		f.last = at
	}
	return out
}

func (f *Framer) byte(out []scanner.Frame, c byte, at time.Time) []scanner.Frame {
	switch f.cfg.Framing {
	case FramingSTXETX:
		switch {
		case c == stx:
			if f.inFrame {
				out = f.fail(out, at, fmt.Errorf("STX inside a message: %w", ErrUnterminated))
			}
			out = f.flushGarbage(out, at)
			f.inFrame = true
		case !f.inFrame:
			// CR/LF after ETX are a common configured suffix: not garbage.
			if c != cr && c != lf {
				f.garbage = append(f.garbage, c)
			}
		case c == etx:
			if len(f.buf) > 0 || f.over { // STX ETX with nothing between is no scan
				out = f.emit(out, at)
			}
			f.inFrame = false
		default:
			out = f.add(out, c)
		}
	case FramingCR, FramingLF:
		term := byte(cr)
		if f.cfg.Framing == FramingLF {
			term = lf
		}
		other := byte(lf + cr - term)
		switch {
		case c == term:
			if len(f.buf) > 0 || f.over {
				out = f.emit(out, at)
			}
		case c == other && len(f.buf) == 0:
			// The other half of a CR LF the scanner was set to send, or a
			// stray terminator left from before a reconnect.
		default:
			out = f.add(out, c)
		}
	case FramingCRLF:
		switch {
		case c == lf && len(f.buf) > 0 && f.buf[len(f.buf)-1] == cr:
			f.buf = f.buf[:len(f.buf)-1]
			if len(f.buf) > 0 || f.over {
				out = f.emit(out, at)
			}
		case c == lf && len(f.buf) == 0:
			// stray LF at the start: from before a reconnect
		default:
			out = f.add(out, c)
		}
	default: // gap
		out = f.add(out, c)
	}
	return out
}

func (f *Framer) add(out []scanner.Frame, c byte) []scanner.Frame {
	if len(f.buf) >= f.cfg.MaxLen {
		f.over = true
		return out
	}
	f.buf = append(f.buf, c)
	return out
}

func (f *Framer) emit(out []scanner.Frame, at time.Time) []scanner.Frame {
	if f.over {
		return f.fail(out, at, fmt.Errorf("%w (%d bytes)", ErrOverflow, f.cfg.MaxLen))
	}
	out = append(out, scanner.Frame{Data: f.buf, At: at})
	f.buf = nil
	return out
}

func (f *Framer) fail(out []scanner.Frame, at time.Time, err error) []scanner.Frame {
	out = append(out, scanner.Frame{Data: f.buf, At: at, Err: err})
	f.buf, f.over = nil, false
	return out
}

func (f *Framer) flushGarbage(out []scanner.Frame, at time.Time) []scanner.Frame {
	if len(f.garbage) == 0 {
		return out
	}
	out = append(out, scanner.Frame{Data: f.garbage, At: at, Err: ErrGarbage})
	f.garbage = nil
	return out
}

// Flush handles silence: call it when a read times out. In gap framing the
// pending bytes become a message; otherwise they are discarded as
// unterminated (a partial code must never reach the till as a product).
func (f *Framer) Flush(now time.Time) []scanner.Frame {
	if now.Sub(f.last) < f.cfg.Gap {
		return nil
	}
	var out []scanner.Frame
	out = f.flushGarbage(out, f.last)
	if len(f.buf) == 0 && !f.over {
		return out
	}
	if f.cfg.Framing == FramingGap {
		out = f.emit(out, f.last)
		if len(out) > 0 && out[len(out)-1].Err == nil {
			out[len(out)-1].Flags |= scanner.FlagGapEnded
		}
		return out
	}
	f.inFrame = false
	return f.fail(out, f.last, ErrUnterminated)
}
