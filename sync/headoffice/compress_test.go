package headoffice

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tillagent/sync/wire"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// TestCompressedExchange: an answer worth it goes gzip to a client that
// takes it, as it is to one that does not, and a small one as it is;
// every answer says head office takes gzip bodies; a push in gzip is
// applied like a plain one, and a body in another coding is 415, a
// broken gzip 400.
func TestCompressedExchange(t *testing.T) {
	const card = "3400000000061"
	s, raw := gzipTill(t, card)
	do := func(method, path, accept, coding string, body []byte) (*http.Response, []byte) {
		t.Helper()
		resp, b := raw(method, path, accept, coding, "", body)
		if resp.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("%s %s: Accept-Encoding %q, want gzip", method, path, resp.Header.Get("Accept-Encoding"))
		}
		return resp, b
	}
	const page = "/v1/till/feed?snapshot=1&limit=1000"
	plainResp, plain := do("GET", page, "", "", nil)
	if plainResp.StatusCode != 200 || plainResp.Header.Get("Content-Encoding") != "" || len(plain) < minGzip {
		t.Fatalf("plain page: %s, Content-Encoding %q, %d bytes", plainResp.Status, plainResp.Header.Get("Content-Encoding"), len(plain))
	}
	packedResp, packed := do("GET", page, "gzip, deflate", "", nil)
	if packedResp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(packedResp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("page to a client taking gzip: Content-Encoding %q, Vary %q", packedResp.Header.Get("Content-Encoding"), packedResp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(packed))
	if err != nil {
		t.Fatal(err)
	}
	unpacked, _ := io.ReadAll(zr)
	// The same page, but for the time it was made.
	var a, b wire.Feed
	if json.Unmarshal(plain, &a) != nil || json.Unmarshal(unpacked, &b) != nil || len(a.Replica.Cards) == 0 || len(a.Replica.Cards) != len(b.Replica.Cards) ||
		len(packed) >= len(unpacked) {
		t.Fatalf("gzip page: %d bytes packed, %d unpacked, %d cards; plain %d bytes, %d cards", len(packed), len(unpacked), len(b.Replica.Cards), len(plain), len(a.Replica.Cards))
	}
	if r, _ := do("GET", page, "gzip;q=0", "", nil); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	if r, _ := do("GET", "/healthz", "gzip", "", nil); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("a small answer got Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}

	var lt lateTill
	batch, _ := json.Marshal(lt.batch(spendFrom(card, "A", "c1", "10")))
	if r, body := do("POST", "/v1/till/journal", "", "gzip", gz(t, batch)); r.StatusCode != 200 || !strings.Contains(string(body), `"applied"`) {
		t.Fatalf("gzip push: %s %s", r.Status, body)
	}
	if bal := balanceOf(t, s, card); bal != "90" {
		t.Fatalf("balance after the gzip push: %s, want 90", bal)
	}
	if r, body := do("POST", "/v1/till/journal", "", "br", batch); r.StatusCode != 415 || !strings.Contains(string(body), "gzip or none") {
		t.Errorf("a br body: %s %s, want 415", r.Status, body)
	}
	if r, body := do("POST", "/v1/till/journal", "", "gzip", batch); r.StatusCode != 400 || !strings.Contains(string(body), "gzip body") {
		t.Errorf("a body said gzip that is not: %s %s, want 400", r.Status, body)
	}
}

// TestGzipBodyBounded: a gzip body is bounded as sent and once unpacked: a
// few kilobytes unpacking past the limit are refused as too large before
// they are all unpacked.
func TestGzipBodyBounded(t *testing.T) {
	bomb := gz(t, make([]byte, 10<<20)) // 10 MiB of zeros: about 10 KB
	for _, c := range []struct {
		limit  int64
		tooBig bool
	}{{1 << 20, true}, {20 << 20, false}} {
		r := httptest.NewRequest("POST", "/v1/till/journal", bytes.NewReader(bomb))
		r.Header.Set("Content-Encoding", "gzip")
		data, err := readBody(httptest.NewRecorder(), r, c.limit)
		var mb *http.MaxBytesError
		if c.tooBig != errors.As(err, &mb) || !c.tooBig && len(data) != 10<<20 {
			t.Errorf("%d bytes packed, limit %d: %d bytes, %v", len(bomb), c.limit, len(data), err)
		}
	}
}

// gzipTill is head office with card holding lot A of 100 points, till
// S001-T01 enrolled, served over a socket, and a raw caller for the till.
func gzipTill(t *testing.T, card string) (*Server, func(method, path, accept, coding, auth string, body []byte) (*http.Response, []byte)) {
	now := demoNow
	s := lateFixture(t, &now, lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil))
	secret, err := s.Enrol(context.Background(), "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	return s, rawCall(t, api.URL, secret)
}

// rawCall makes requests to head office at url as till S001-T01 (or with
// the Authorization auth), Accept-Encoding and Content-Encoding as given:
// its transport leaves both to the caller.
func rawCall(t *testing.T, url, secret string) func(method, path, accept, coding, auth string, body []byte) (*http.Response, []byte) {
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	return func(method, path, accept, coding, auth string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
		if auth == "" {
			req.SetBasicAuth("S001-T01", secret)
		} else {
			req.Header.Set("Authorization", auth)
		}
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		if coding != "" {
			req.Header.Set("Content-Encoding", coding)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
}
