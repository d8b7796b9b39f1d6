package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sseFrame is one event as a client reads it off the wire.
type sseFrame struct {
	ID, Type, Data, Retry string
}

// decode reads the frame's JSON.
func (f sseFrame) decode(t *testing.T) (e struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}) {
	t.Helper()
	if err := json.Unmarshal([]byte(f.Data), &e); err != nil {
		t.Fatalf("event %s: data %q: %v", f.ID, f.Data, err)
	}
	if e.ID != f.ID || e.Type != f.Type {
		t.Fatalf("event JSON id %q type %q, SSE id %q event %q", e.ID, e.Type, f.ID, f.Type)
	}
	return e
}

// stream is one GET /v1/events connection over the server's Unix socket.
type stream struct {
	t      *testing.T
	resp   *http.Response
	frames chan sseFrame
	retry  string
}

// eventServer serves the API with broker b on a Unix socket in a temp dir.
func eventServer(t *testing.T, b *Broker) (*Server, *http.Client) {
	t.Helper()
	s := New(Options{Events: b})
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := ListenUnix(sock, 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUnix(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// open connects with the Last-Event-ID header (if not empty) and query,
// and reads the stream.
func open(t *testing.T, c *http.Client, lastID, query string) *stream {
	t.Helper()
	s := openPaused(t, c, lastID, query)
	go s.read()
	return s
}

// openPaused connects but reads nothing until read is started: a client
// that does not keep up.
func openPaused(t *testing.T, c *http.Client, lastID, query string) *stream {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://localhost/v1/events"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: t, resp: resp, frames: make(chan sseFrame, 4*Keep)}
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.resp.Body.Close() }

// read parses SSE frames until the body ends.
func (s *stream) read() {
	defer close(s.frames)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var f sseFrame
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if f.Type != "" || f.Data != "" {
				s.frames <- f
			}
			f = sseFrame{}
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "id":
			f.ID = v
		case "event":
			f.Type = v
		case "data":
			f.Data = v
		case "retry":
			f.Retry = v
			s.retry = v
		}
	}
}

// next waits for the next frame.
func (s *stream) next() sseFrame {
	s.t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			s.t.Fatal("event stream ended")
		}
		return f
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10 s")
	}
	return sseFrame{}
}

// quiet checks that no frame arrives for a moment (nothing doubled).
func (s *stream) quiet() {
	s.t.Helper()
	select {
	case f := <-s.frames:
		s.t.Fatalf("unexpected event %+v", f)
	case <-time.After(200 * time.Millisecond):
	}
}

// numbered publishes scans numbered from..to (inclusive) in Data.
func numbered(b *Broker, from, to int, pad int) {
	for i := from; i <= to; i++ {
		b.Publish(Event{Type: "scan", Data: map[string]any{"n": i, "pad": strings.Repeat("x", pad)}})
	}
}

// num reads the number numbered put in a frame.
func num(t *testing.T, f sseFrame) int {
	t.Helper()
	var d struct{ N int }
	if err := json.Unmarshal(f.decode(t).Data, &d); err != nil {
		t.Fatal(err)
	}
	return d.N
}

// waitSubscribers waits until the broker counts n clients (a closed
// connection is noticed by the server a moment later).
func waitSubscribers(t *testing.T, b *Broker, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); b.Subscribers() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", b.Subscribers(), n)
		}
	}
}

// Events published while the client was away are replayed once, in
// order, after it reconnects with Last-Event-ID; live ones follow.
func TestEventsResumeAfterReconnect(t *testing.T) {
	b := NewBroker(64)
	_, c := eventServer(t, b)
	s := open(t, c, "", "")
	waitSubscribers(t, b, 1)
	numbered(b, 1, 3, 0)
	var last sseFrame
	for want := 1; want <= 3; want++ {
		if last = s.next(); num(t, last) != want || last.ID != fmt.Sprintf("%s-%d", b.Boot(), want) {
			t.Fatalf("event %+v, want n %d with id %s-%d", last, want, b.Boot(), want)
		}
	}
	if s.retry != fmt.Sprint(retryMillis) {
		t.Errorf("retry hint %q, want %d", s.retry, retryMillis)
	}
	s.close()
	waitSubscribers(t, b, 0)
	numbered(b, 4, 8, 0) // while nobody listens

	for _, via := range []struct{ header, query string }{
		{last.ID, ""},
		{"", "?last_event_id=" + last.ID},
		{last.ID, "?last_event_id=" + b.Boot() + "-1"}, // the header wins
	} {
		s = open(t, c, via.header, via.query)
		waitSubscribers(t, b, 1)
		for want := 4; want <= 8; want++ {
			if f := s.next(); f.Type != "scan" || num(t, f) != want {
				t.Fatalf("header %q query %q: replayed %+v, want n %d", via.header, via.query, f, want)
			}
		}
		s.quiet()
		s.close()
		waitSubscribers(t, b, 0)
	}
	s = open(t, c, last.ID, "")
	for want := 4; want <= 8; want++ {
		if f := s.next(); num(t, f) != want {
			t.Fatalf("replayed %+v, want n %d", f, want)
		}
	}
	numbered(b, 9, 10, 0)
	for want := 9; want <= 10; want++ {
		if f := s.next(); num(t, f) != want {
			t.Fatalf("live %+v, want n %d", f, want)
		}
	}
	s.quiet()
}

// A client reconnecting while events keep coming gets every event exactly
// once: the backlog and the live subscription are taken under one lock.
func TestEventsResumeWhilePublishing(t *testing.T) {
	b := NewBroker(64)
	_, c := eventServer(t, b)
	const total = 200 // under Keep: nothing may be lost
	s := open(t, c, "", "")
	waitSubscribers(t, b, 1)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 1; i <= total; i++ {
			numbered(b, i, i, 0)
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var got []int
	var last string
	for len(got) < 40 {
		f := s.next()
		got, last = append(got, num(t, f)), f.ID
	}
	s.close()
	s = open(t, c, last, "")
	for len(got) < total {
		got = append(got, num(t, s.next()))
	}
	<-published
	s.quiet()
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("event %d is n %d: %v", i, n, got)
		}
	}
}

// An id that cannot be resumed gives a gap event first, then every kept
// event: an id older than what is kept, one never given out, and one of
// another agent process (a restart).
func TestEventsGap(t *testing.T) {
	b := NewBroker(64)
	_, c := eventServer(t, b)
	numbered(b, 1, Keep+10, 0)
	oldest := Keep + 10 - Keep + 1

	other := NewBroker(64) // the agent before its restart
	other.Publish(Event{Type: "scan"})
	prevID := other.Boot() + "-1"

	for _, tc := range []struct{ id, reason string }{
		{b.Boot() + "-1", GapTooOld},
		{b.Boot() + "-9999", GapUnknown},
		{"not-an-id", GapUnknown},
		{"garbage", GapUnknown},
		{prevID, GapRestarted},
	} {
		t.Run(tc.reason+"/"+tc.id, func(t *testing.T) {
			s := open(t, c, tc.id, "")
			g := s.next()
			var d GapData
			if err := json.Unmarshal(g.decode(t).Data, &d); err != nil {
				t.Fatal(err)
			}
			if g.Type != "gap" || d.Reason != tc.reason || d.LastEventID != tc.id || d.Boot != b.Boot() {
				t.Fatalf("first event %+v (%+v), want a gap %s", g, d, tc.reason)
			}
			// Its id is the position just before the kept events, so a
			// reconnect right after it resumes without another gap.
			if g.ID != fmt.Sprintf("%s-%d", b.Boot(), oldest-1) {
				t.Errorf("gap id %s, want %s-%d", g.ID, b.Boot(), oldest-1)
			}
			for want := oldest; want <= Keep+10; want++ {
				if f := s.next(); num(t, f) != want {
					t.Fatalf("kept event %+v, want n %d", f, want)
				}
			}
			s.quiet()
			s.close()
			s = open(t, c, g.ID, "")
			if f := s.next(); f.Type != "scan" || num(t, f) != oldest {
				t.Fatalf("resume from the gap's id: %+v, want n %d", f, oldest)
			}
		})
	}
}

// A restarted agent has kept nothing yet: the gap alone, then live.
func TestEventsGapAfterRestartNothingKept(t *testing.T) {
	before := NewBroker(64)
	before.Publish(Event{Type: "scan"})
	b := NewBroker(64)
	_, c := eventServer(t, b)
	s := open(t, c, before.Boot()+"-1", "")
	if g := s.next(); g.Type != "gap" || !strings.Contains(g.Data, `"reason":"restarted"`) || g.ID != b.Boot()+"-0" {
		t.Fatalf("first event %+v, want a restarted gap with id %s-0", g, b.Boot())
	}
	s.quiet()
	numbered(b, 1, 1, 0)
	if f := s.next(); num(t, f) != 1 || f.ID != b.Boot()+"-1" {
		t.Fatalf("live %+v", f)
	}
}

// A client that does not read never blocks Publish. Its stream catches up
// from the kept events when it reads again: nothing lost while it fell
// behind by less than what is kept; a gap where it fell behind by more.
func TestEventsSlowClient(t *testing.T) {
	// 64 KB events fill the socket's buffers after a few dozen at most, so
	// the stream's writes block and its 2-event buffer overflows for
	// certain; the broker keeps 40 so that falling further behind is cheap.
	const pad, keep = 64 << 10, 40
	for _, tc := range []struct {
		name    string
		total   int
		wantGap bool
	}{{"within kept", keep - 10, false}, {"beyond kept", 300, true}} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker(2)
			b.keep = keep
			srv, c := eventServer(t, b)
			s := openPaused(t, c, "", "")
			waitSubscribers(t, b, 1)
			done := make(chan struct{})
			go func() { numbered(b, 1, tc.total, pad); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Publish blocked on a client that does not read")
			}
			if n := b.Subscribers(); tc.wantGap && n != 0 {
				t.Fatalf("%d subscribers: the client that does not read was not dropped from the fan-out", n)
			}
			go s.read()
			var got []int
			gaps := 0
			for len(got) == 0 || got[len(got)-1] != tc.total {
				f := s.next()
				if f.Type == "gap" {
					if !strings.Contains(f.Data, `"reason":"too_old"`) {
						t.Fatalf("gap %s", f.Data)
					}
					gaps++
					continue
				}
				got = append(got, num(t, f))
			}
			s.quiet()
			if (gaps > 0) != tc.wantGap {
				t.Fatalf("%d gaps, want gap %v: %d events %v", gaps, tc.wantGap, len(got), got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] || !tc.wantGap && got[i] != got[i-1]+1 {
					t.Fatalf("events out of order or missing at %d: %v", i, got)
				}
			}
			if got[0] != 1 || tc.wantGap && got[len(got)-keep] != tc.total-keep+1 {
				t.Fatalf("events %v: want from 1 and, after the gap, the last %d kept", got, keep)
			}
			var sb strings.Builder
			srv.o.Metrics.Write(context.Background(), &sb)
			if !strings.Contains(sb.String(), `tillagent_event_resumes_total{reason="behind"}`) {
				t.Errorf("the stream never fell behind (the test proves nothing) or the metrics do not count it:\n%s", sb.String())
			}
		})
	}
}
