package main

import (
	"context"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
)

// -paper-refill: the standalone emulator loads paper again after it ran
// out, so paper out → load → continue can be shown without a test harness.
func TestEmulatePaperRefill(t *testing.T) {
	em := emulator.New(emulator.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go refillPaper(ctx, em, 200*time.Millisecond)
	em.PaperOut()
	if em.PaperPresent() {
		t.Fatal("paper present right after PaperOut")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !em.PaperPresent() {
		if time.Now().After(deadline) {
			t.Fatal("paper never refilled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
