package shtrih

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Link-layer retry limits of the spec (§3.1).
const (
	maxENQ    = 10
	maxNAK    = 10
	maxAnswer = 10
)

var errTimeout = errors.New("byte timeout")

// conn runs the ENQ/ACK/NAK exchange over rw. A goroutine owns the reads
// (a serial Read has no deadline and no context), so waiting for a byte is a
// select on its channel, a timer and ctx. Not safe for concurrent exchanges:
// the Driver serialises them.
type conn struct {
	rw          io.ReadWriter
	port        string
	byteTimeout time.Duration
	byteTime    time.Duration // time one byte takes on the wire; 0 when the speed is unknown
	retryPause  time.Duration // pause between unanswered ENQs
	alwaysENQ   bool          // send ENQ before every command, even after a clean exchange
	clean       bool          // the last exchange ended cleanly
	log         *slog.Logger

	in    chan []byte
	rerr  atomic.Pointer[error]
	pend  []byte
	timer *time.Timer

	written, read atomic.Int64 // bytes, for the benchmark's wire floor
	// onStale sees answers to earlier commands found by ENQ (recovery logic).
	onStale func(Answer)
}

func newConn(rw io.ReadWriter, port string, byteTimeout time.Duration, baud int, log *slog.Logger) *conn {
	c := &conn{rw: rw, port: port, byteTimeout: byteTimeout, retryPause: 100 * time.Millisecond, log: log, in: make(chan []byte, 64)}
	if baud > 0 {
		c.byteTime = time.Duration(10 * int64(time.Second) / int64(baud))
	}
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
	go c.readLoop()
	return c
}

func (c *conn) readLoop() {
	buf := make([]byte, 1024)
	for {
		n, err := c.rw.Read(buf)
		if n > 0 {
			c.in <- append([]byte(nil), buf[:n]...)
		}
		if err != nil {
			c.rerr.Store(&err)
			close(c.in)
			return
		}
	}
}

func (c *conn) closedErr() error {
	if p := c.rerr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrPortClosed, *p)
	}
	return ErrPortClosed
}

// readByte waits up to d for one byte.
func (c *conn) readByte(ctx context.Context, d time.Duration) (byte, error) {
	if len(c.pend) == 0 {
		if err := c.fill(ctx, d); err != nil {
			return 0, err
		}
	}
	b := c.pend[0]
	c.pend = c.pend[1:]
	c.read.Add(1)
	return b, nil
}

func (c *conn) fill(ctx context.Context, d time.Duration) error {
	select {
	case chunk, ok := <-c.in:
		if !ok {
			return c.closedErr()
		}
		c.pend = chunk
		return nil
	default:
	}
	c.timer.Reset(d)
	defer c.timer.Stop()
	select {
	case chunk, ok := <-c.in:
		if !ok {
			return c.closedErr()
		}
		c.pend = chunk
		return nil
	case <-c.timer.C:
		return errTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush drops whatever arrived unasked.
func (c *conn) flush() {
	c.pend = nil
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

func (c *conn) write(b []byte) error {
	n, err := c.rw.Write(b)
	c.written.Add(int64(n))
	if err != nil {
		return fmt.Errorf("write to %s: %w: %w", c.port, ErrPortClosed, err)
	}
	return nil
}

// readControl waits for ACK or NAK, skipping the FF some USB models send.
func (c *conn) readControl(ctx context.Context, d time.Duration) (byte, error) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, errTimeout
		}
		b, err := c.readByte(ctx, left)
		if err != nil {
			return 0, err
		}
		if b != 0xFF {
			return b, nil
		}
	}
}

// readAnswer is phase C: wait for STX up to wait, then LEN and the rest with
// byteTimeout between bytes.
func (c *conn) readAnswer(ctx context.Context, wait time.Duration) (Answer, error) {
	deadline := time.Now().Add(wait + c.byteTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Answer{}, errTimeout
		}
		b, err := c.readByte(ctx, left)
		if err != nil {
			return Answer{}, err
		}
		if b == STX {
			break
		}
	}
	n, err := c.readByte(ctx, c.byteTimeout)
	if err != nil {
		return Answer{}, err
	}
	if n == 0 {
		return Answer{}, fmt.Errorf("%w: LEN 0", ErrBadAnswer)
	}
	body := make([]byte, 0, int(n)+2)
	body = append(body, n)
	for len(body) < int(n)+2 {
		if len(c.pend) == 0 {
			if err := c.fill(ctx, c.byteTimeout); err != nil {
				return Answer{}, err
			}
		}
		k := min(len(c.pend), int(n)+2-len(body))
		body = append(body, c.pend[:k]...)
		c.pend = c.pend[k:]
		c.read.Add(int64(k))
	}
	if LRC(body[:len(body)-1]) != body[len(body)-1] {
		return Answer{}, ErrBadLRC
	}
	return ParseAnswer(body[1 : len(body)-1])
}

// settle drops input until the line has been quiet for byteTimeout (at most
// 10 of them), acknowledging any repeated answer so the device clears it.
func (c *conn) settle(ctx context.Context) {
	c.pend = nil
	sawFrame := false
	for i := 0; i < 10; i++ {
		if err := c.fill(ctx, c.byteTimeout); err != nil {
			break
		}
		for _, b := range c.pend {
			sawFrame = sawFrame || b == STX
		}
		c.read.Add(int64(len(c.pend)))
		c.pend = nil
	}
	if sawFrame {
		c.write([]byte{ACK})
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exchange sends one command and returns its answer, following §3.1: it
// never rewrites a frame after a timeout without first asking with ENQ.
// ErrAnswerLost (or ErrNoLink after the frame went out) means the command may
// have executed.
func (c *conn) exchange(ctx context.Context, payload []byte, timeout time.Duration) (Answer, error) {
	frame, err := EncodeFrame(payload)
	if err != nil {
		return Answer{}, err
	}
	cmd, _, _ := SplitCmd(payload)
	name := CmdName(cmd)
	var sent, accepted bool // frame written at least once / ACKed by the device
	enqFails, naks, answers := 0, 0, 0
	ackWait := c.byteTimeout + time.Duration(len(frame)+1)*c.byteTime
	// After a clean exchange (its answer ACKed, no retry) the device holds no
	// answer, so ENQ can be skipped; any retry goes through ENQ (§3.1).
	skipENQ := c.clean && !c.alwaysENQ
	c.clean = false
	if skipENQ {
		c.flush()
	}

	lost := func(cause error) error {
		if sent {
			return fmt.Errorf("%s on %s: %w (%w)", name, c.port, ErrAnswerLost, cause)
		}
		return fmt.Errorf("%s on %s: %w (%w)", name, c.port, ErrNoLink, cause)
	}
	for {
		if err := ctx.Err(); err != nil {
			return Answer{}, err
		}
		if !skipENQ {
			// Phase A: synchronise.
			c.flush()
			if err := c.write([]byte{ENQ}); err != nil {
				return Answer{}, err
			}
			ctrl, err := c.readControl(ctx, c.byteTimeout+2*c.byteTime)
			if err != nil && !errors.Is(err, errTimeout) {
				return Answer{}, lost(err)
			}
			switch {
			case err == nil && ctrl == ACK:
				enqFails = 0
				wait := 30 * time.Second
				if sent {
					wait = timeout
				}
				ans, err := c.readAnswer(ctx, wait)
				if err != nil {
					if ctx.Err() != nil {
						return Answer{}, ctx.Err()
					}
					answers++
					if answers > maxAnswer {
						return Answer{}, lost(err)
					}
					c.write([]byte{NAK})
					continue
				}
				if err := c.write([]byte{ACK}); err != nil {
					return Answer{}, err
				}
				// Our ENQ may have crossed the device's own ACK and answer: it
				// then repeats the answer once more. Let that copy arrive and
				// drop it, so it is not taken for the next command's answer.
				c.settle(ctx)
				if sent && ans.Cmd == cmd {
					return ans, nil
				}
				c.log.Warn("answer to an earlier command", "port", c.port, "cmd", CmdName(ans.Cmd), "err", ans.Err)
				if c.onStale != nil {
					c.onStale(ans)
				}
				continue
			case err == nil && ctrl == NAK:
				enqFails = 0
				if accepted {
					// The device took the frame but holds no answer: it restarted.
					return Answer{}, lost(errors.New("device idle after accepting the command"))
				}
			default:
				c.log.Debug("no reply to ENQ", "cmd", name, "got", ctrl, "err", err)
				enqFails++
				if enqFails >= maxENQ {
					return Answer{}, lost(errors.New("no reply to ENQ"))
				}
				if err := sleepCtx(ctx, c.retryPause); err != nil {
					return Answer{}, err
				}
				continue
			}
		}
		skipENQ = false

		// Phase B: send the frame.
		if err := c.write(frame); err != nil {
			return Answer{}, err
		}
		sent = true
		ctrl, err := c.readControl(ctx, ackWait)
		switch {
		case err == nil && ctrl == ACK:
			accepted = true
		case err == nil && ctrl == NAK:
			// The spec rewrites the frame at once. But a NAK here may be the
			// late reply to an earlier ENQ while the device is executing this
			// frame, and a rewrite would execute it twice. Asking with ENQ
			// costs two bytes and settles it: the device answers in order.
			naks++
			if naks > maxNAK {
				return Answer{}, fmt.Errorf("%s on %s: %w", name, c.port, ErrTooManyNAK)
			}
			continue
		case err != nil && !errors.Is(err, errTimeout):
			return Answer{}, lost(err)
		default:
			c.log.Debug("no ACK for frame, asking with ENQ", "cmd", name, "got", ctrl, "err", err)
			continue // timeout or garbage: ask with ENQ, never rewrite blindly
		}

		// Phase C: the answer.
		ans, err := c.readAnswer(ctx, timeout)
		if err == nil {
			if err := c.write([]byte{ACK}); err != nil {
				return Answer{}, err
			}
			if ans.Cmd == cmd {
				c.clean = naks == 0 && answers == 0 && enqFails == 0
				return ans, nil
			}
			c.log.Warn("answer echoes another command", "port", c.port, "sent", name, "got", CmdName(ans.Cmd))
			continue
		}
		if ctx.Err() != nil {
			return Answer{}, ctx.Err()
		}
		answers++
		c.log.Debug("bad or missing answer", "cmd", name, "err", err)
		if answers > maxAnswer {
			return Answer{}, lost(err)
		}
		if errors.Is(err, ErrBadLRC) || errors.Is(err, errTimeout) || errors.Is(err, ErrBadAnswer) {
			c.write([]byte{NAK})
			continue
		}
		return Answer{}, lost(err)
	}
}
