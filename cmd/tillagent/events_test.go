package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tillagent/internal/config"
)

// sseEvent is one Server-Sent Event as the till UI reads it.
type sseEvent struct {
	ID, Type string
	Data     struct {
		Kind   string `json:"kind"`
		Code   string `json:"code"`
		Card   string `json:"card"`
		Reason string `json:"reason"`
	}
}

// events follows GET /v1/events over the agent's socket, resuming after
// lastID if set.
func (h *harness) events(lastID string) (<-chan sseEvent, func()) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", "http://localhost/v1/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		h.t.Fatalf("events: status %d", resp.StatusCode)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch k {
			case "id":
				e.ID = v
			case "event":
				e.Type = v
			case "data":
				json.Unmarshal([]byte(v), &struct {
					Data any `json:"data"`
				}{&e.Data})
			case "":
				if e.Type != "" {
					out <- e
				}
				e = sseEvent{}
			}
		}
	}()
	return out, func() { resp.Body.Close() }
}

// next waits for the next event of one of the types.
func nextEvent(t *testing.T, ch <-chan sseEvent, types ...string) sseEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("event stream ended")
			}
			for _, ty := range types {
				if e.Type == ty {
					return e
				}
			}
		case <-deadline:
			t.Fatalf("no %v event within 10 s", types)
		}
	}
}

// scanned waits until the agent has counted n scans of kind from the demo
// scanner, so that they are published whether or not anyone listens.
func (h *harness) scanned(kind string, n int) {
	h.t.Helper()
	want := `tillagent_scans_total{device="demo",kind="` + kind + `"} ` + strconv.Itoa(n)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, b := h.do("GET", "/metrics", nil, nil); strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("metrics never showed %s", want)
		}
	}
}

func seqOf(t *testing.T, id string) int {
	t.Helper()
	_, n, ok := strings.Cut(id, "-")
	seq, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Fatalf("event id %q is not <boot>-<seq>", id)
	}
	return seq
}

// A till UI whose EventSource reconnects gets the scans made while it was
// away, once and in order, then live ones; after the agent restarts, or
// with an id it never gave out, it is told of the gap first.
func TestEventsResumeOverTheAgent(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Demo.VirtualScanner = true })
	ch, stop := h.events("")
	h.must(202, "POST", "/v1/demo/scan", map[string]string{"code": card}, nil)
	seen := nextEvent(t, ch, "scan")
	if seen.Data.Card != card || seen.ID == "" {
		t.Fatalf("card scan %+v", seen)
	}
	stop() // the UI's connection drops

	away := []string{"4600000010014", "4600000010021"}
	for i, code := range away {
		h.must(202, "POST", "/v1/demo/scan", map[string]string{"code": code}, nil)
		h.scanned("product", i+1)
	}
	ch, stop = h.events(seen.ID)
	var got []string
	last := seqOf(t, seen.ID)
	for len(got) < len(away) {
		e := nextEvent(t, ch, "scan", "gap", "health", "printer")
		if e.Type == "gap" {
			t.Fatalf("gap on resuming a kept id: %+v", e)
		}
		if s := seqOf(t, e.ID); s <= last {
			t.Fatalf("event %s replayed again or out of order (after seq %d)", e.ID, last)
		}
		last = seqOf(t, e.ID)
		if e.Type == "scan" {
			got = append(got, e.Data.Code)
		}
	}
	if strings.Join(got, ",") != strings.Join(away, ",") {
		t.Fatalf("replayed scans %v, want %v", got, away)
	}
	h.must(202, "POST", "/v1/demo/scan", map[string]string{"code": "4600000010038"}, nil)
	if e := nextEvent(t, ch, "scan"); e.Data.Code != "4600000010038" || seqOf(t, e.ID) <= last {
		t.Fatalf("live scan after the replay: %+v", e)
	}
	stop()

	for _, c := range []struct{ name, id, reason string }{
		{"unknown id", "nonsense", "unknown"},
		{"id of the process before the restart", seen.ID, "restarted"},
	} {
		if c.reason == "restarted" {
			h.stop()
			h.start()
		}
		ch, stop = h.events(c.id)
		if g := nextEvent(t, ch, "gap", "scan"); g.Type != "gap" || g.Data.Reason != c.reason {
			t.Fatalf("%s: first event %+v, want a gap %s", c.name, g, c.reason)
		}
		stop()
	}
}
