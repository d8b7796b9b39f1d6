package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"tillagent/driver/ptypair"
	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
	"tillagent/driver/scanner/scanconf"
	"tillagent/driver/scanner/serialscan"
	"tillagent/internal/api"
	"tillagent/internal/config"
)

// scanners runs every scanner, classifies its scans and publishes them
// with the devices' health on the event stream.
type scanners struct {
	mu     sync.Mutex
	health map[string]scanner.Health
	events *api.Broker
	m      *api.Metrics
	cls    *classify.Classifier
	log    *slog.Logger
}

// ScannerStatus is one scanner on /v1/status.
type ScannerStatus struct {
	Name  string    `json:"name"`
	Code  string    `json:"code"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

func (s *scanners) status() []ScannerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ScannerStatus{}
	for _, h := range s.health {
		st := ScannerStatus{Name: h.Device, Code: string(h.Code), At: h.At}
		if h.Err != nil {
			st.Error = h.Err.Error()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *scanners) report(h scanner.Health) {
	s.mu.Lock()
	s.health[h.Device] = h
	s.mu.Unlock()
	s.m.Add("tillagent_scanner_health_total", 1, "device", h.Device, "code", string(h.Code))
	data := map[string]any{"device": h.Device, "code": h.Code}
	if h.Err != nil {
		data["error"] = h.Err.Error()
	}
	s.events.Publish(api.Event{Type: "health", At: h.At, Data: data})
}

// scanEvent is the data of a scan event: what the UI acts on.
type scanEvent struct {
	Device    string `json:"device"`
	Kind      string `json:"kind"`
	Card      string `json:"card,omitempty"`
	Code      string `json:"code,omitempty"`
	GS1       bool   `json:"gs1,omitempty"`
	Symbology string `json:"symbology"`
	Reason    string `json:"reason,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Raw       string `json:"raw"` // control characters shown as <GS>, <CR>
}

func (s *scanners) run(ctx context.Context, drivers []scanner.Driver) {
	out := make(chan scanner.Scan, 32)
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Run(ctx, out, s.report)
		}()
	}
	go func() { wg.Wait(); close(out) }()
	for sc := range out {
		r := s.cls.Classify(ctx, sc)
		ev := scanEvent{Device: sc.Device, Kind: string(r.Kind), Card: r.Card, Code: r.Code, GS1: r.GS1,
			Symbology: fmt.Sprint(sc.Symbology), Reason: string(r.Reason), Duplicate: r.Duplicate, Raw: scanner.Printable(sc.Raw)}
		if r.Err != nil {
			ev.Detail = r.Err.Error()
		}
		s.m.Add("tillagent_scans_total", 1, "device", sc.Device, "kind", string(r.Kind))
		s.log.Info("scan", "device", sc.Device, "kind", r.Kind, "reason", r.Reason)
		s.events.Publish(api.Event{Type: "scan", At: sc.At, Data: ev})
	}
}

// virtualScanner is the demo's serial scanner: a pty whose slave the real
// serial driver reads and whose master `tillctl demo scan` types on.
type virtualScanner struct {
	master, slave *os.File
	mu            sync.Mutex
}

func newVirtualScanner() (*virtualScanner, error) {
	m, s, err := ptypair.Open()
	if err != nil {
		return nil, fmt.Errorf("demo scanner: %w", err)
	}
	return &virtualScanner{master: m, slave: s}, nil
}

func (v *virtualScanner) driver(log *slog.Logger) scanner.Driver {
	return scanconf.Driver(config.Scanner{Name: "demo", Type: "serial", Port: v.slave.Name(), Baud: 9600, Framing: string(serialscan.FramingCR)}, log)
}

func (v *virtualScanner) Close() {
	v.master.Close()
	v.slave.Close()
}

// handle is POST /v1/demo/scan: the code and a CR, as a serial scanner sends them.
func (v *virtualScanner) handle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Code == "" || strings.ContainsAny(req.Code, "\r\n") {
		api.WriteError(w, http.StatusBadRequest, "request.bad_json", "Ошибка запроса", `want {"code": "..."}, one code without CR or LF`, "")
		return
	}
	v.mu.Lock()
	_, err := v.master.Write([]byte(req.Code + "\r"))
	v.mu.Unlock()
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "scanner.disconnected", "Сканер недоступен", err.Error(), "")
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}
