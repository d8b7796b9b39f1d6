package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
)

// The technician commands against the emulator on a pty, as a technician runs them.
func TestPrinterCommands(t *testing.T) {
	em := emulator.New(emulator.Config{ByteTimeout: 20 * time.Millisecond})
	p, err := emulator.ServePTY(context.Background(), em)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flags := []string{"-config", "../../config.example.yaml", "-port", p.Name}
	steps := []struct {
		run  func(context.Context, []string) error
		args []string
	}{
		{runPrinterStatus, nil},
		{runPrinterOpenShift, []string{"-cashier", "Петров"}},
		{runPrinterTest, nil},
		{runPrinterTest, []string{"-fiscal"}},
		{runPrinterTest, []string{"-fiscal", "-bonus-mode", "counter_provision"}},
		{runPrinterX, nil},
		{runPrinterZ, nil},
		{runPrinterFN, nil},
	}
	for i, s := range steps {
		if err := s.run(ctx, append(append([]string{}, flags...), s.args...)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	j := em.Journal()
	if len(j) != 4 || j[0].T1021 != "Петров" || j[1].T1020 != 29990 || j[2].T1217 != 10000 || j[3].Kind != "shift_close" {
		t.Errorf("journal %+v", j)
	}
	// A device refusal comes back with its hint.
	err = runPrinterZ(ctx, flags)
	if err == nil || !strings.Contains(err.Error(), "hint: open the shift") {
		t.Errorf("Z with the shift closed: %v", err)
	}
}

func TestApplyFault(t *testing.T) {
	em := emulator.New(emulator.Config{})
	for _, ok := range []string{"paper_out", "cover_open", "fn_warnings", "power_cut_after@FF45", "bad_lrc@10", "nak@ff46"} {
		if err := applyFault(em, ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"fire", "melt@FF45", "nak@XYZ"} {
		if err := applyFault(em, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
