package main

import (
	"bufio"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeWalkthrough runs the README's five commands against the real
// agent binary on the demo (printer emulator, virtual scanner), as a
// newcomer would after `make run`.
func TestReadmeWalkthrough(t *testing.T) {
	a := newDemoAgent(t)
	tillctl := a.tillctl
	if out := tillctl(2, "shift", "open", "-cashier", "Иванова"); !strings.Contains(out, "shift opened") {
		t.Fatalf("shift open: %s", out)
	}
	// `tillctl scan view` follows the agent's classified scans.
	view := exec.Command(a.bin("tillctl"), "scan", "view", "-config", a.cfg, "-json")
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
	if out := tillctl(1, "status"); !regexp.MustCompile(`database\s+[0-9.]+ MB, [0-9.]+ [MG]B free on its disk`).MatchString(out) {
		t.Fatalf("status should show the database's size and the free disk: %s", out)
	} else if !regexp.MustCompile(`documents\s+sales 1, returns 1\n`).MatchString(out) {
		t.Fatalf("status should count the sale and its return: %s", out)
	} else if !regexp.MustCompile(`journal kept\s+every entry \(head office has not said which it holds\)\n`).MatchString(out) {
		t.Fatalf("status should say the till keeps its whole journal without head office: %s", out)
	}
	status := tillctl(1, "status", "-json")
	if !strings.Contains(status, `"settled": true`) || !strings.Contains(status, `"scanner.ok"`) {
		t.Fatalf("status: %s", status)
	}
}
