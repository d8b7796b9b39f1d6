package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/tillagent", "./cmd/tillctl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	replica, _ := filepath.Abs("../../testdata/demo/replica.yaml")
	cfg := filepath.Join(dir, "config.yaml")
	sock := filepath.Join(dir, "tillagent.sock")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`store: {path: %s/till.db, demo_replica: %s}
api: {socket: %s}
demo: {virtual_scanner: true, emulator_journal: %s/fiscal.json}
`, dir, replica, sock, dir)), 0o600)
	var logs bytes.Buffer
	var agent *exec.Cmd
	start := func() {
		t.Helper()
		os.Remove(sock)
		agent = exec.Command(filepath.Join(dir, "tillagent"), "-config", cfg)
		agent.Stdout, agent.Stderr = &logs, &logs
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if out, err := exec.Command(filepath.Join(dir, "tillctl"), "status", "-config", cfg).CombinedOutput(); err == nil {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("agent did not start: %v %s\n%s", err, out, logs.String())
			}
		}
	}
	stop := func() { agent.Process.Signal(os.Interrupt); agent.Wait() }
	start()
	defer func() { stop() }()
	scan := func(code string) {
		t.Helper()
		if out, err := exec.Command(filepath.Join(dir, "tillctl"), "demo", "scan", "-config", cfg, code).CombinedOutput(); err != nil {
			t.Fatalf("demo scan: %v\n%s", err, out)
		}
	}

	follow := exec.Command(filepath.Join(dir, "tillctl"), "events", "-config", cfg, "-type", "scan")
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
			t.Fatalf("tillctl events: no line with %q; stderr %s\nagent log:\n%s", want, stderr.String(), logs.String())
		}
		return ""
	}

	time.Sleep(300 * time.Millisecond) // the stream is open before the first scan
	scan("2900000000018")
	next("card=2900000000018")
	stop()
	start()
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
