package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestJSONErrorsAndExitCodes: with -json a failed command prints JSON on
// stdout too (the agent's error answer, or tillctl's own in the same
// shape), so a script reads JSON whatever happened; the exit code tells
// "the agent said no" (1) from "the agent did not answer" (3). Before,
// -json printed nothing on a failure and every failure exited 1 (found by
// a QA pass).
func TestJSONErrorsAndExitCodes(t *testing.T) {
	a := newDemoAgent(t)
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(a.bin("tillctl"), append(args, "-config", a.cfg)...)
		cmd.Dir = "../.."
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	errCode := func(stdout string) string {
		t.Helper()
		var v struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.Error.Message == "" {
			t.Fatalf("-json stdout is not an error object (%v): %q", err, stdout)
		}
		return v.Error.Code
	}

	out, stderr, code := run("return", "no-such-sale", "-json")
	if code != 1 || !strings.Contains(stderr, "tillctl: agent:") {
		t.Errorf("an agent refusal: exit %d, stderr %q; want 1 and the refusal", code, stderr)
	}
	if c := errCode(out); !strings.Contains(c, ".") || strings.HasPrefix(c, "tillctl.") {
		t.Errorf("an agent refusal with -json: code %q, want the agent's", c)
	}
	if out, _, code := run("return", "no-such-sale"); code != 1 || out != "" {
		t.Errorf("an agent refusal without -json: exit %d, stdout %q", code, out)
	}

	a.stop()
	out, stderr, code = run("status", "-json")
	if code != exitUnreachable || !strings.Contains(stderr, "is tillagent running?") {
		t.Errorf("agent down: exit %d, stderr %q; want %d and the socket named", code, stderr, exitUnreachable)
	}
	if c := errCode(out); c != "tillctl.unreachable" {
		t.Errorf("agent down with -json: code %q", c)
	}
	if _, _, code := run("sync", "status"); code != exitUnreachable {
		t.Errorf("agent down without -json: exit %d", code)
	}
	// tillctl's own failure before any call: a config it cannot read.
	cmd := exec.Command(a.bin("tillctl"), "status", "-json", "-config", a.dir+"/missing.yaml")
	var o bytes.Buffer
	cmd.Stdout = &o
	if err := cmd.Run(); err == nil || errCode(o.String()) != "tillctl.failed" {
		t.Errorf("missing config with -json: %v, stdout %q", err, o.String())
	}
}
