package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoAgent is the built tillagent on the demo (printer emulator, virtual
// scanner) in a temporary directory, and the built tillctl next to it.
type demoAgent struct {
	t              *testing.T
	dir, cfg, sock string
	logs           syncBuffer
	cmd            *exec.Cmd
}

// newDemoAgent builds both binaries, writes the demo's config and starts
// the agent; it is stopped when the test ends.
func newDemoAgent(t *testing.T) *demoAgent {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	a := &demoAgent{t: t, dir: t.TempDir()}
	build := exec.Command("go", "build", "-o", a.dir+"/", "./cmd/tillagent", "./cmd/tillctl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	replica, _ := filepath.Abs("../../testdata/demo/replica.yaml")
	a.cfg = filepath.Join(a.dir, "config.yaml")
	a.sock = filepath.Join(a.dir, "tillagent.sock")
	os.WriteFile(a.cfg, []byte(fmt.Sprintf(`store: {path: %s/till.db, demo_replica: %s}
api: {socket: %s}
demo: {virtual_scanner: true, emulator_journal: %s/fiscal.json}
`, a.dir, replica, a.sock, a.dir)), 0o600)
	a.start()
	t.Cleanup(a.stop)
	return a
}

// start starts the agent and waits until it answers.
func (a *demoAgent) start() {
	a.t.Helper()
	os.Remove(a.sock)
	a.cmd = exec.Command(a.bin("tillagent"), "-config", a.cfg)
	a.cmd.Stdout, a.cmd.Stderr = &a.logs, &a.logs
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, err := exec.Command(a.bin("tillctl"), "status", "-config", a.cfg).CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("agent did not start: %v %s\n%s", err, out, a.logs.String())
		}
	}
}

// stop stops the agent gracefully; a second stop does nothing.
func (a *demoAgent) stop() {
	if a.cmd != nil {
		a.cmd.Process.Signal(os.Interrupt)
		a.cmd.Wait()
		a.cmd = nil
	}
}

func (a *demoAgent) bin(name string) string { return filepath.Join(a.dir, name) }

// tillctl runs "VERB [VERB2] -config cfg ARGS…" from the repository root;
// words counts the verb's words. A failure ends the test.
func (a *demoAgent) tillctl(words int, args ...string) string {
	a.t.Helper()
	argv := append(append(append([]string{}, args[:words]...), "-config", a.cfg), args[words:]...)
	cmd := exec.Command(a.bin("tillctl"), argv...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		a.t.Fatalf("tillctl %s: %v\n%s\nagent log:\n%s", strings.Join(args, " "), err, out, a.logs.String())
	}
	return string(out)
}
