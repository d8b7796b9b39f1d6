package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseReplica feeds arbitrary bytes to the replica parser as JSON and
// as YAML. It must never panic, and whatever it accepts must survive a JSON
// round trip unchanged (so a replica accepted once is accepted again, e.g.
// when the agent re-exports it). Seeds: testdata/replica/*.
func FuzzParseReplica(f *testing.F) {
	dir := filepath.Join("..", "..", "testdata", "replica")
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasSuffix(e.Name(), ".yaml"))
	}
	f.Add([]byte(minimal), false)
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		format := "json"
		if isYAML {
			format = "yaml"
		}
		r, err := ParseReplica(data, format)
		if err != nil {
			if r != nil {
				t.Fatal("replica returned with an error")
			}
			return
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal accepted replica: %v", err)
		}
		r2, err := ParseReplica(js, "json")
		if err != nil {
			t.Fatalf("accepted replica does not re-parse: %v\n%s", err, js)
		}
		js2, err := json.Marshal(r2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed the replica:\n%s\n%s", js, js2)
		}
	})
}

// TestReplicaFixtures checks the fixtures say what their names say.
func TestReplicaFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "replica")
	load := func(name string) (*Replica, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return ParseReplicaFile(name, data)
	}
	j, err := load("minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	y, err := load("minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	jj, _ := json.Marshal(j)
	yj, _ := json.Marshal(y)
	if !bytes.Equal(jj, yj) {
		t.Fatalf("minimal.json and minimal.yaml differ:\n%s\n%s", jj, yj)
	}
	if err := j.Validate(nil); err != nil {
		t.Fatalf("minimal.json is not self-contained: %v", err)
	}
	if _, err := load("delta-lots.json"); err != nil {
		t.Fatalf("delta-lots.json: %v", err)
	}
	r, err := load("bad-reference.json")
	if err != nil {
		t.Fatalf("bad-reference.json parses (references are Import's job): %v", err)
	}
	if err := r.Validate(nil); err == nil || !strings.Contains(err.Error(), `cards[0] code "2900000000018": unknown card kind "bonus"`) {
		t.Fatalf("bad-reference.json: %v", err)
	}
	_, err = load("bad-values.yaml")
	for _, want := range []string{
		`stores[0] id "S9": empty name`,
		`stores[0] id "S9": timezone "Mars/Olympus"`,
		`products[0] id "x": vat "vat18"`,
		`products[0] id "x": last_purchase_price -1.00 outside 0..10000000000000.00`,
		`lots[0] id "L": remaining 7 outside 0..5`,
		`lots[0] id "L": expires_at not after active_from`,
		`cards[0] code "2900000000990": history purchases_all_time 100000000000000000.00 outside 0..10000000000000.00`,
		`lots[1] id "M": expires_at not after active_from`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad-values.yaml: error %v lacks %q", err, want)
		}
	}
}
