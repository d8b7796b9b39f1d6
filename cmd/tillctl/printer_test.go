package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
)

// stdoutOf runs f with os.Stdout captured (tillctl commands print there).
func stdoutOf(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := f()
	os.Stdout = old
	w.Close()
	out := <-done
	r.Close()
	return out, ferr
}

// The technician commands against the emulator on a pty, as a technician runs them.
func TestPrinterCommands(t *testing.T) {
	em := emulator.New(emulator.Config{ByteTimeout: 20 * time.Millisecond, LastFD: 41})
	p, err := emulator.ServePTY(context.Background(), em)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flags := []string{"-config", "../../config.example.yaml", "-port", p.Name}
	steps := []struct {
		name  string
		run   func(context.Context, []string) error
		args  []string
		state func()
		want  []string
	}{
		{"status", runPrinterStatus, nil, nil, []string{"mode 4.0, shift closed", "serial 12345678, INN 7701234567", "FN 9287440301120991", "last FD 41"}},
		{"open shift", runPrinterOpenShift, []string{"-cashier", "Петров"}, nil, []string{"shift opened"}},
		{"status, shift open", runPrinterStatus, nil, nil, []string{"mode 2.0, shift open", "last FD 42"}},
		{"test page", runPrinterTest, nil, nil, nil},
		{"test sale", runPrinterTest, []string{"-fiscal"}, nil, []string{"test receipt fiscalised: FD 43", "change 0.10, total 299.90"}},
		{"test sale, counter-provision", runPrinterTest, []string{"-fiscal", "-bonus-mode", "counter_provision"}, nil, []string{"FD 44", "total 399.90"}},
		{"doc", runPrinterDoc, []string{"-fd", "43"}, nil, []string{"FD 43: receipt, FP ", "sale, total 299.90"}},
		{"reprint", runPrinterReprint, nil, nil, []string{"copy of the last receipt printed"}},
		{"X", runPrinterX, nil, nil, []string{"X report printed"}},
		{"Z", runPrinterZ, nil, nil, []string{"Z report printed, shift closed"}},
		{"FN with warnings", runPrinterFN, nil, func() { em.SetFNWarnings(0x09) }, []string{"last FD 45", "shift open false",
			"WARNING printer.fn_replace_urgent: replace the FN within 3 days", "WARNING printer.ofd_timeout"}},
	}
	for _, s := range steps {
		if s.state != nil {
			s.state()
		}
		out, err := stdoutOf(t, func() error { return s.run(ctx, append(append([]string{}, flags...), s.args...)) })
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", s.name, w, out)
			}
		}
	}
	if out, _ := stdoutOf(t, func() error { return runPrinterFN(ctx, flags) }); strings.Contains(out, "fn_resource_low") {
		t.Errorf("warning bit 1 is not set:\n%s", out)
	}
	j := em.Journal()
	if len(j) != 4 || j[0].T1021 != "Петров" || j[1].T1020 != 29990 || j[1].Change != 10 || j[2].T1217 != 10000 || j[2].Reprints != 1 || j[3].Kind != "shift_close" {
		t.Errorf("journal %+v", j)
	}
	if err := runPrinterDoc(ctx, append(flags, "-fd", "99")); err == nil || !strings.Contains(err.Error(), "printer.no_data") {
		t.Errorf("missing FD: %v", err)
	}
	// Device refusals and states come back with their hint and health code.
	err = runPrinterZ(ctx, flags)
	if err == nil || !strings.Contains(err.Error(), "hint: open the shift (health code printer.shift_closed)") {
		t.Errorf("Z with the shift closed: %v", err)
	}
	if _, err := stdoutOf(t, func() error { return runPrinterOpenShift(ctx, flags) }); err != nil {
		t.Fatal(err)
	}
	em.SetCover(true)
	err = runPrinterTest(ctx, append(flags, "-fiscal"))
	if err == nil || !strings.Contains(err.Error(), "hint: close the printer cover") || !strings.Contains(err.Error(), "printer.cover_open") {
		t.Errorf("test sale with the cover open: %v", err)
	}
}

func TestApplyFault(t *testing.T) {
	em := emulator.New(emulator.Config{})
	for _, ok := range []string{"paper_out", "cover_open", "fn_warnings", "power_cut_after@FF45", "bad_lrc@10", "nak@ff46", "drop_frame_byte@8D", "power_cut_mid_answer@FF45"} {
		if err := applyFault(em, ok, time.Second); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"fire", "melt@FF45", "nak@XYZ"} {
		if err := applyFault(em, bad, time.Second); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A one-shot power cut from the command line comes back on by itself after
// -power-off: nothing else could switch the emulator on again.
func TestEmulatePowerCutComesBack(t *testing.T) {
	em := emulator.New(emulator.Config{ByteTimeout: 20 * time.Millisecond})
	if err := applyFault(em, "power_cut_before@10", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	p, err := emulator.ServePTY(context.Background(), em)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The status frame is lost with the power; the driver asks with ENQ
	// until the device is back and then sends it again.
	out, err := stdoutOf(t, func() error {
		return runPrinterStatus(ctx, []string{"-config", "../../config.example.yaml", "-port", p.Name})
	})
	if err != nil || !strings.Contains(out, "shift closed") {
		t.Fatalf("after the cut: %v\n%s", err, out)
	}
}

// Without -port, printer.type emulator serves the command from a fresh
// in-process emulator (config.example.yaml is set so).
func TestPrinterConfiguredEmulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := stdoutOf(t, func() error { return runPrinterStatus(ctx, []string{"-config", "../../config.example.yaml"}) })
	if err != nil || !strings.Contains(out, "mode 4.0, shift closed") || !strings.Contains(out, "FN 9287440301120991") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = stdoutOf(t, func() error { return runPrinterTest(ctx, []string{"-config", "../../config.example.yaml"}) })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
