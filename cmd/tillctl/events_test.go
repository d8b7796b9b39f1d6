package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEventsFollowAgentRestart: `tillctl events` keeps following the
// agent's stream across a restart of the agent: it reconnects with the
// last id it saw, shows the agent's gap (a restarted agent cannot replay
// the old process's events) and the scans after it.
func TestEventsFollowAgentRestart(t *testing.T) {
	a := newDemoAgent(t)
	scan := func(code string) { a.tillctl(2, "demo", "scan", code) }

	follow := exec.Command(a.bin("tillctl"), "events", "-config", a.cfg, "-type", "scan")
	var stderr syncBuffer
	follow.Stderr = &stderr
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.Contains(l, want) {
				t.Fatalf("tillctl events: %q (open %v), want a line with %q; stderr %s", l, ok, want, stderr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("tillctl events: no line with %q; stderr %s\nagent log:\n%s", want, stderr.String(), a.logs.String())
		}
		return ""
	}

	time.Sleep(300 * time.Millisecond) // the stream is open before the first scan
	scan("2900000000018")
	next("card=2900000000018")
	a.stop()
	a.start()
	scan("2900000000025")
	next("gap    events missed (restarted)")
	next("card=2900000000025")
	if !strings.Contains(stderr.String(), "reconnecting") {
		t.Errorf("stderr %q, want the lost stream said", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
