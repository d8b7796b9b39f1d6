package shtrih

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// script is a device played by the test byte by byte, to pin the host side
// of the §3.1 exchange down exactly.
type script struct {
	t        *testing.T
	fromHost chan byte
	toHost   *io.PipeWriter
	c        *conn
	closers  []io.Closer
}

func newScript(t *testing.T) *script {
	inR, inW := io.Pipe()   // device → driver
	outR, outW := io.Pipe() // driver → device
	s := &script{t: t, fromHost: make(chan byte, 1024), toHost: inW, closers: []io.Closer{inW, outR}}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := outR.Read(buf)
			for _, b := range buf[:n] {
				s.fromHost <- b
			}
			if err != nil {
				close(s.fromHost)
				return
			}
		}
	}()
	rw := struct {
		io.Reader
		io.Writer
	}{inR, outW}
	s.c = newConn(rw, "script", 20*time.Millisecond, 0, slog.New(slog.DiscardHandler))
	s.c.retryPause = time.Millisecond
	t.Cleanup(func() {
		for _, c := range s.closers {
			c.Close()
		}
	})
	return s
}

// expect reads exactly want from the host.
func (s *script) expect(what string, want ...byte) {
	s.t.Helper()
	got := make([]byte, 0, len(want))
	deadline := time.After(2 * time.Second)
	for len(got) < len(want) {
		select {
		case b, ok := <-s.fromHost:
			if !ok {
				s.t.Fatalf("%s: host closed after % X", what, got)
			}
			got = append(got, b)
		case <-deadline:
			s.t.Fatalf("%s: got % X, want % X", what, got, want)
		}
	}
	if !bytes.Equal(got, want) {
		s.t.Fatalf("%s: host sent % X, want % X", what, got, want)
	}
}

// quiet checks the host sends nothing for d.
func (s *script) quiet(what string, d time.Duration) {
	s.t.Helper()
	select {
	case b := <-s.fromHost:
		s.t.Fatalf("%s: host sent %02X", what, b)
	case <-time.After(d):
	}
}

func (s *script) send(b ...byte) {
	s.t.Helper()
	if _, err := s.toHost.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

type result struct {
	a   Answer
	err error
}

func (s *script) exchange(payload []byte) (frame []byte, res <-chan result) {
	frame, _ = EncodeFrame(payload)
	ch := make(chan result, 1)
	go func() {
		a, err := s.c.exchange(context.Background(), payload, 60*time.Millisecond)
		ch <- result{a, err}
	}()
	return frame, ch
}

func (s *script) wait(res <-chan result) result {
	s.t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(5 * time.Second):
		s.t.Fatal("exchange did not return")
	}
	return result{}
}

var (
	status10h = []byte{0x10, 0x1E, 0, 0, 0}
	answer10h = []byte{0x02, 0x10, 0x10, 0x00, 0x1E, 0x92, 0x02, 0x02, 0x00, 0x00, 0x9F, 0xE5, 0x18, 0x01, 0x00, 0x92, 0x08, 0x00, 0x75}
)

// No ACK for the frame: the host asks with ENQ and never rewrites the frame
// blindly. Here the device did take it and answers after the ENQ.
func TestLinkNoBlindRewriteAfterTimeout(t *testing.T) {
	s := newScript(t)
	frame, res := s.exchange(status10h)
	s.expect("phase A", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	// silence: the ACK was lost on the line
	s.expect("after the ACK timeout", ENQ)
	s.send(ACK)
	s.send(answer10h...)
	s.expect("answer confirmed", ACK)
	r := s.wait(res)
	if r.err != nil || r.a.Cmd != 0x10 || r.a.Err != 0 {
		t.Fatalf("%+v %v", r.a, r.err)
	}
	s.quiet("after the exchange", 50*time.Millisecond)
}

// The device NAKs the ENQ after the timeout: it never got the frame, so
// sending it again is safe and the host does.
func TestLinkResendOnlyAfterENQSaysIdle(t *testing.T) {
	s := newScript(t)
	frame, res := s.exchange(status10h)
	s.expect("phase A", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	s.expect("after the ACK timeout", ENQ)
	s.send(NAK)
	s.expect("resent after NAK to ENQ", frame...)
	s.send(ACK)
	s.send(answer10h...)
	s.expect("answer confirmed", ACK)
	if r := s.wait(res); r.err != nil {
		t.Fatal(r.err)
	}
}

// A NAK right after the frame also goes through ENQ (the NAK may be a late
// reply to the ENQ while the device executes the frame).
func TestLinkNAKAfterFrameAsksFirst(t *testing.T) {
	s := newScript(t)
	frame, res := s.exchange(status10h)
	s.expect("phase A", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	s.send(NAK)
	s.expect("after NAK", ENQ)
	s.send(NAK)
	s.expect("resent", frame...)
	s.send(ACK)
	s.send(answer10h...)
	s.expect("answer confirmed", ACK)
	if r := s.wait(res); r.err != nil {
		t.Fatal(r.err)
	}
}

// Bad LRC or a missing answer after the device's ACK: NAK, then ENQ; the
// device repeats its answer after the ENQ.
func TestLinkBadAnswerNAKThenENQ(t *testing.T) {
	s := newScript(t)
	frame, res := s.exchange(status10h)
	s.expect("phase A", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	s.send(ACK)
	bad := append([]byte(nil), answer10h...)
	bad[len(bad)-1] ^= 0xFF
	s.send(bad...)
	s.expect("bad LRC", NAK)
	s.expect("ask for a repeat", ENQ)
	s.send(ACK)
	s.send(answer10h...)
	s.expect("answer confirmed", ACK)
	if r := s.wait(res); r.err != nil || r.a.Cmd != 0x10 {
		t.Fatalf("%+v %v", r.a, r.err)
	}
}

// The device took the frame (ACK) and then restarted: ENQ finds it idle.
// The command may have run, so the host reports ErrAnswerLost and does not
// send the frame again.
func TestLinkAnswerLostNeverResends(t *testing.T) {
	s := newScript(t)
	frame, res := s.exchange(status10h)
	s.expect("phase A", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	s.send(ACK)
	// no answer
	s.expect("answer timeout", NAK)
	s.expect("ask", ENQ)
	s.send(NAK) // idle: the answer is gone
	r := s.wait(res)
	if !errors.Is(r.err, ErrAnswerLost) {
		t.Fatalf("got %v, want ErrAnswerLost", r.err)
	}
	s.quiet("after the loss", 100*time.Millisecond)
}

// An answer to an earlier command found by ENQ is confirmed and handed to
// recovery; then the new command goes out.
func TestLinkStaleAnswerFirst(t *testing.T) {
	s := newScript(t)
	var stale []Answer
	s.c.onStale = func(a Answer) { stale = append(stale, a) }
	payload := []byte{0x88, 0x1E, 0, 0, 0}
	frame, res := s.exchange(payload)
	s.expect("phase A", ENQ)
	s.send(ACK)
	s.send(answer10h...) // the answer to a 10h sent before a restart of the host
	s.expect("stale answer confirmed", ACK)
	s.expect("ask again", ENQ)
	s.send(NAK)
	s.expect("phase B", frame...)
	s.send(ACK)
	s.send(0x02, 0x03, 0x88, 0x00, 0x1E, 0x95)
	s.expect("answer confirmed", ACK)
	r := s.wait(res)
	if r.err != nil || r.a.Cmd != 0x88 || len(stale) != 1 || stale[0].Cmd != 0x10 {
		t.Fatalf("%+v %v, stale %+v", r.a, r.err, stale)
	}
}

// The spec's unanswered ENQ limit: 10 tries, then ErrNoLink; nothing was sent.
func TestLinkNoLink(t *testing.T) {
	s := newScript(t)
	_, res := s.exchange(status10h)
	for range maxENQ {
		s.expect("ENQ", ENQ)
	}
	r := s.wait(res)
	if !errors.Is(r.err, ErrNoLink) || errors.Is(r.err, ErrAnswerLost) {
		t.Fatalf("got %v", r.err)
	}
	s.quiet("after giving up", 50*time.Millisecond)
}

// Answer timeouts of the vendor table, and overrides.
func TestCommandTimeouts(t *testing.T) {
	d := &Driver{o: Options{Timeouts: map[uint16]time.Duration{CmdCloseReceipt2: 5 * time.Second}}}
	for cmd, want := range map[uint16]time.Duration{
		CmdShortStatus: 3 * time.Second, CmdFullStatus: 3 * time.Second, CmdXReport: 30 * time.Second,
		CmdZReport: 65 * time.Second, CmdOpenShift: 120 * time.Second, CmdOperation2: 30 * time.Second,
		CmdCloseReceipt2: 5 * time.Second,
	} {
		if got := d.timeout(cmd); got != want {
			t.Errorf("%s: %v, want %v", CmdName(cmd), got, want)
		}
	}
}

// chunks is a port that delivers b in pieces of the given sizes, then EOF.
type chunks struct {
	b     []byte
	sizes []byte
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := len(c.b)
	if len(c.sizes) > 0 {
		n = min(n, 1+int(c.sizes[0]))
		c.sizes = c.sizes[1:]
	}
	n = copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func (c *chunks) Write(p []byte) (int, error) { return len(p), nil }

// The driver's own stream parser (phase C) on arbitrary line input split at
// arbitrary points: it never panics, and every answer it returns is a frame
// with a good LRC that really is in the input.
func FuzzReadAnswer(f *testing.F) {
	f.Add(answer10h, []byte{3, 0, 7})
	f.Add(append([]byte{0xFF, 0x15, 0x02, 0x00}, answer10h...), []byte{0})
	f.Add([]byte{0x02, 0x03, 0x88, 0x00, 0x1E, 0x95, 0x02, 0x02, 0xFF}, []byte{1, 1, 1})
	f.Add([]byte{0x02, 0xFF, 0x01}, []byte(nil))
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		c := newConn(&chunks{b: append([]byte(nil), in...), sizes: sizes}, "fuzz", 5*time.Millisecond, 0, slog.New(slog.DiscardHandler))
		ctx := context.Background()
		for range 1000 {
			a, err := c.readAnswer(ctx, 0)
			if errors.Is(err, ErrPortClosed) {
				return
			}
			if err != nil {
				continue // timeout, bad LRC, bad answer: the caller NAKs and asks again
			}
			payload := append(CmdBytes(a.Cmd), a.Err)
			frame, ferr := EncodeFrame(append(payload, a.Data...))
			if ferr != nil || !bytes.Contains(in, frame) {
				t.Fatalf("answer %+v is no frame of the input % X", a, in)
			}
		}
	})
}
