package headoffice

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tillagent/sync/wire"
)

// TestAcceptsGzipHolds: the Accept-Encoding forms head office reads
// right (case, spaces, q-values that refuse or accept, lists).
func TestAcceptsGzipHolds(t *testing.T) {
	for v, want := range map[string]bool{
		"gzip":                   true,
		"GZIP":                   true,
		" gzip ":                 true,
		"deflate, gzip":          true,
		"gzip;q=0.5":             true,
		"gzip;q=1":               true,
		"gzip ; q=0":             false,
		"gzip;q=0.000":           false,
		"br;q=1, gzip;q=0":       false,
		"identity":               false,
		"":                       false,
		"gzipped":                false,
		"br, deflate":            false,
		"gzip;q=0.001":           true,
		"gzip;q=1.000, identity": true,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set("Accept-Encoding", v)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", v, got, want)
		}
	}
}

// TestAcceptsGzipRefusalForms: RFC 9110 §12.4.2: a qvalue is "0" ["."
// 0*3DIGIT], parameter names are case-insensitive, and an explicit
// gzip;q=0 wins over "*": all of these refuse gzip.
func TestAcceptsGzipRefusalForms(t *testing.T) {
	for _, v := range []string{"gzip;q=0.", "gzip;Q=0", "gzip;q=0;x=1", "gzip;x=1;q=0", "*, gzip;q=0", "gzip;q=0, *", "*;q=0", "x-gzip;q=0"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", v)
		if acceptsGzip(r) {
			t.Errorf("Accept-Encoding %q refuses gzip; head office would send it", v)
		}
	}
}

// TestGzipBodyEdges: readBody on bodies a careless or hostile client
// sends: two gzip members (RFC 1952 allows it: read as one stream),
// trailing garbage (refused), a truncated member, a coding list, x-gzip,
// and a bomb exactly at the limit (taken) and one byte over (413).
func TestGzipBodyEdges(t *testing.T) {
	read := func(coding string, body []byte, limit int64) ([]byte, error) {
		r := httptest.NewRequest("POST", "/v1/till/journal", bytes.NewReader(body))
		if coding != "" {
			r.Header.Set("Content-Encoding", coding)
		}
		return readBody(httptest.NewRecorder(), r, limit)
	}
	two := append(gz(t, []byte("hello ")), gz(t, []byte("world"))...)
	if data, err := read("gzip", two, 1<<20); err != nil || string(data) != "hello world" {
		t.Errorf("two members: %q, %v", data, err)
	}
	if _, err := read("gzip", append(gz(t, []byte("x")), "garbage"...), 1<<20); err == nil {
		t.Errorf("trailing garbage taken")
	}
	g := gz(t, bytes.Repeat([]byte("a"), 5000))
	if _, err := read("gzip", g[:len(g)-4], 1<<20); err == nil {
		t.Errorf("a member without its trailer taken")
	}
	if _, err := read("GZIP", g, 1<<20); err != nil {
		t.Errorf("Content-Encoding GZIP: %v", err)
	}
	var ue unsupportedEncoding
	if _, err := read("gzip, identity", g, 1<<20); !errors.As(err, &ue) {
		t.Errorf("a coding list: %v, want unsupported", err)
	}
	if data, err := read("x-gzip", g, 1<<20); err != nil || len(data) != 5000 {
		t.Errorf("x-gzip (RFC 9110: gzip): %d bytes, %v", len(data), err)
	}
	if _, err := read("deflate", g, 1<<20); !errors.As(err, &ue) {
		t.Errorf("deflate: %v, want unsupported", err)
	}
	exact := gz(t, make([]byte, 4096))
	if data, err := read("gzip", exact, 4096); err != nil || len(data) != 4096 {
		t.Errorf("unpacked exactly at the limit: %d bytes, %v", len(data), err)
	}
	var mb *http.MaxBytesError
	if _, err := read("gzip", gz(t, make([]byte, 4097)), 4096); !errors.As(err, &mb) {
		t.Errorf("unpacked one byte over the limit: %v, want MaxBytesError", err)
	}
	// A packed body over the limit is refused as sent, before unpacking.
	if _, err := read("gzip", bytes.Repeat([]byte{0x1f}, 5000), 4096); !errors.As(err, &mb) {
		t.Errorf("packed body over the limit: %v", err)
	}
}

// TestGzipOverHTTP: over a socket, a push of two concatenated gzip
// members each a whole batch, an ERP import bomb unpacking past MaxBody
// (413, quickly, nothing imported), and Vary/Content-Encoding on an
// answer to "*" and "x-gzip".
func TestGzipOverHTTP(t *testing.T) {
	const card = "3400000000061"
	s, do := gzipTill(t, card)
	// Two batches, each a gzip member: the body unpacks to two JSON
	// documents one after the other. It must be refused whole, not have
	// its second batch silently dropped.
	var lt lateTill
	b1, _ := json.Marshal(lt.batch(spendFrom(card, "A", "c1", "10")))
	b2, _ := json.Marshal(lt.batch(spendFrom(card, "A", "c2", "7")))
	resp, body := do("POST", "/v1/till/journal", "", "gzip", "", append(gz(t, b1), gz(t, b2)...))
	bal := balanceOf(t, s, card)
	switch {
	case resp.StatusCode == 200 && bal == "90":
		t.Errorf("two batches in one body: 200 and only the first applied (balance 90): %s", body)
	case resp.StatusCode == 200 && bal != "83":
		t.Errorf("two batches in one body: 200, balance %s", bal)
	case resp.StatusCode != 200 && bal != "100":
		t.Errorf("two batches in one body refused (%s) but balance %s", resp.Status, bal)
	}
	if resp.StatusCode != 400 {
		t.Errorf("two batches in one body: %s, want 400 (refused whole)", resp.Status)
	}

	// An ERP import bomb: 80 MiB of spaces inside a JSON document packs
	// to ~80 KB; unpacked it is over MaxBody (64 MiB).
	var bomb bytes.Buffer
	bomb.WriteString(`{"version":1,"products":[]`)
	bomb.Write(bytes.Repeat([]byte(" "), 80<<20))
	bomb.WriteString(`}`)
	packed := gz(t, bomb.Bytes())
	start := time.Now()
	resp, body = do("POST", "/v1/erp/import", "", "gzip", "Bearer erp-secret", packed)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than") {
		t.Errorf("ERP import bomb (%d bytes packed): %s %s, want 413", len(packed), resp.Status, body)
	}
	t.Logf("ERP import bomb: %d bytes packed, %s in %v", len(packed), resp.Status, time.Since(start).Round(time.Millisecond))

	// "*" and x-gzip take gzip; "*" with gzip;q=0 does not. Always with
	// Vary, so a cache does not hand one client's coding to another.
	for ae, want := range map[string]string{"*": "gzip", "x-gzip": "gzip", "identity;q=0, *": "gzip", "*, gzip;q=0": "", "GZIP;Q=0": ""} {
		resp, body := do("GET", "/v1/till/feed?snapshot=1&limit=1000", ae, "", "", nil)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: %s, Vary %q", ae, resp.Status, resp.Header.Get("Vary"))
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != want {
			t.Errorf("Accept-Encoding %q → Content-Encoding %q, want %q", ae, ce, want)
		} else if ce == "" && !json.Valid(body) {
			t.Errorf("Accept-Encoding %q: plain answer not JSON", ae)
		}
	}
	// A gzip push to an endpoint's error path still says Accept-Encoding
	// (so the till does not fall back on a real 400 from a new build).
	resp, _ = do("POST", "/v1/till/journal", "", "gzip", "", gz(t, []byte(`{"till_id":"S001-T01","entries":[{]}`)))
	if resp.StatusCode != 400 || resp.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("a bad gzip batch: %s, Accept-Encoding %q", resp.Status, resp.Header.Get("Accept-Encoding"))
	}
	_ = wire.Applied
}
