package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// The TCP guard refuses peers that are not on this machine even with the
// right token. The listener binds loopback only, so no such peer can reach
// it here; the guard is checked on its own with a foreign RemoteAddr.
func TestGuardRefusesForeignPeer(t *testing.T) {
	s := New(Options{Token: "0123456789abcdef"})
	h := s.handler(viaTCP, "8765")
	for _, c := range []struct {
		remote, host, code string
		status             int
	}{
		{"192.0.2.7:41000", "127.0.0.1:8765", "auth.not_loopback", 403},
		{"[2001:db8::1]:41000", "127.0.0.1:8765", "auth.not_loopback", 403},
		{"127.0.0.1:41000", "127.0.0.1:9999", "auth.bad_host", 403},
		{"127.0.0.1:41000", "127.0.0.1:8765", "", 200},
	} {
		req := httptest.NewRequest("GET", "http://"+c.host+"/v1/status", nil)
		req.RemoteAddr, req.Host = c.remote, c.host
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%s → %s: status %d, want %d: %s", c.remote, c.host, rec.Code, c.status, rec.Body)
			continue
		}
		if c.code != "" {
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != c.code {
				t.Errorf("%s: error %s, want %s", c.remote, rec.Body, c.code)
			}
		}
	}
}

// The technician's page shows /v1/status as tables, health codes marked,
// numbers as /v1/status writes them.
func TestStatusPage(t *testing.T) {
	s := New(Options{Status: func(context.Context) any {
		return map[string]any{"till_id": "S001-T01", "settled": true,
			"printer":  map[string]any{"ok": false, "code": "printer.paper_out"},
			"scanners": []map[string]any{{"name": "front", "code": "scanner.ok"}},
			"journal":  map[string]any{"db_bytes": int64(4718592), "disk_free_bytes": int64(12884901888)},
			"sync":     map[string]any{"imported_records": int64(6000123)}}
	}})
	req := httptest.NewRequest("GET", "http://localhost/", nil)
	rec := httptest.NewRecorder()
	s.handler(viaUnix, "").ServeHTTP(rec, req)
	body := rec.Body.String()
	// Numbers in digits: decoded as float64, a million on read 4.718592e+06
	// (found by a QA pass).
	for _, want := range []string{"Кассовый агент S001-T01", `<td class="bad">printer.paper_out</td>`, `<td class="ok">scanner.ok</td>`, "Сканеры",
		"<td>db_bytes</td><td class=\"\">4718592</td>", ">12884901888</td>", ">6000123</td>"} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}
