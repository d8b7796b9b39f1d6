package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeWalkthrough runs the README's five commands against the real
// agent binary on the demo (printer emulator, virtual scanner), as a
// newcomer would after `make run`.
func TestReadmeWalkthrough(t *testing.T) {
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
	agent := exec.Command(filepath.Join(dir, "tillagent"), "-config", cfg)
	agent.Stdout, agent.Stderr = &logs, &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Signal(os.Interrupt); agent.Wait() }()
	// tillctl runs "VERB [VERB2] -config cfg ARGS…"; words counts the verb's words.
	tillctl := func(words int, args ...string) string {
		t.Helper()
		argv := append(append(append([]string{}, args[:words]...), "-config", cfg), args[words:]...)
		cmd := exec.Command(filepath.Join(dir, "tillctl"), argv...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tillctl %s: %v\n%s\nagent log:\n%s", strings.Join(args, " "), err, out, logs.String())
		}
		return string(out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := tillctl(2, "shift", "open", "-cashier", "Иванова"); !strings.Contains(out, "shift opened") {
		t.Fatalf("shift open: %s", out)
	}
	// `tillctl scan view` follows the agent's classified scans.
	view := exec.Command(filepath.Join(dir, "tillctl"), "scan", "view", "-config", cfg, "-json")
	view.Dir = "../.."
	viewOut, err := view.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := view.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { view.Process.Kill(); view.Wait() }()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(viewOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Scan until the viewer, which subscribes in its own time, shows one.
	seen := false
	for i := 0; i < 20 && !seen; i++ {
		tillctl(2, "demo", "scan", "2900000000018")
		select {
		case l := <-lines:
			if !strings.Contains(l, `"loyalty_card"`) || !strings.Contains(l, `"2900000000018"`) {
				t.Fatalf("scan view: %s", l)
			}
			seen = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !seen {
		t.Fatal("scan view showed no scan")
	}
	if out := tillctl(1, "card", "2900000000018"); !regexp.MustCompile(`spendable\s+\d+`).MatchString(out) {
		t.Fatalf("card: %s", out)
	}
	if out := tillctl(1, "card", "2900000000018", "-json"); !strings.Contains(out, `"can_spend": true`) {
		t.Fatalf("card with -json after the code: %s", out)
	}
	if out := tillctl(1, "quote", "-check", "testdata/checks/bonus-basket.json", "-cards", "2900000000018", "-redeem", "40"); !strings.Contains(out, `"payable"`) || !strings.Contains(out, `"max_limit"`) {
		t.Fatalf("quote through the agent: %s", out)
	}
	out := tillctl(1, "sale", "-check", "testdata/checks/bonus-basket.json", "-cards", "2900000000018", "-redeem", "40")
	m := regexp.MustCompile(`sale\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "FD ") || !strings.Contains(out, "card 2900000000018") {
		t.Fatalf("sale: %s", out)
	}
	if out := tillctl(1, "return", m[1]); !strings.Contains(out, "refund") || !strings.Contains(out, "FD ") {
		t.Fatalf("return: %s", out)
	}
	status := tillctl(1, "status", "-json")
	if !strings.Contains(status, `"settled": true`) || !strings.Contains(status, `"scanner.ok"`) {
		t.Fatalf("status: %s", status)
	}
}
