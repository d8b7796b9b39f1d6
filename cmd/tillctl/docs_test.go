package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/internal/store"
)

// codeBlocks returns the fenced blocks of a markdown file whose fence names
// lang, in order.
func codeBlocks(t *testing.T, path, lang string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur *strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```"+lang:
			cur = &strings.Builder{}
		case cur != nil && strings.HasPrefix(strings.TrimSpace(line), "```"):
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// TestDocsExamples keeps the examples in docs/replica.md and docs/check.md
// true: the replica example parses, validates and imports; every check
// example is a check tillctl quote accepts; the check priced in
// docs/replica.md is testdata/checks/bonus-basket.json.
func TestDocsExamples(t *testing.T) {
	ctx := context.Background()
	yamls := codeBlocks(t, "../../docs/replica.md", "yaml")
	if len(yamls) == 0 {
		t.Fatal("docs/replica.md has no yaml example")
	}
	for i, y := range yamls {
		r, err := store.ParseReplica([]byte(y), "yaml")
		if err != nil {
			t.Fatalf("docs/replica.md yaml example %d: %v", i+1, err)
		}
		if err := r.Validate(nil); err != nil {
			t.Fatalf("docs/replica.md yaml example %d is not self-contained: %v", i+1, err)
		}
		s, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Import(ctx, r); err != nil {
			t.Errorf("docs/replica.md yaml example %d does not import: %v", i+1, err)
		}
		s.Close()
	}

	dir := t.TempDir()
	checks := 0
	for _, doc := range []string{"../../docs/replica.md", "../../docs/check.md"} {
		for i, js := range codeBlocks(t, doc, "json") {
			var probe map[string]json.RawMessage
			if json.Unmarshal([]byte(js), &probe) != nil || probe["lines"] == nil || probe["check_id"] != nil || probe["original"] != nil {
				continue // not a check (a result, an abridged fragment)
			}
			checks++
			p := filepath.Join(dir, "c.json")
			if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := readCheck(p); err != nil {
				t.Errorf("%s json block %d: %v", doc, i+1, err)
			}
			if doc == "../../docs/replica.md" {
				want, err := os.ReadFile("../../testdata/checks/bonus-basket.json")
				if err != nil {
					t.Fatal(err)
				}
				var a, b bytes.Buffer
				json.Compact(&a, []byte(js))
				json.Compact(&b, want)
				if a.String() != b.String() {
					t.Errorf("the check priced in docs/replica.md is not testdata/checks/bonus-basket.json:\n%s\n%s", a.String(), b.String())
				}
			}
		}
	}
	if checks < 2 {
		t.Errorf("found %d check examples in the docs, want at least 2", checks)
	}
}

// TestDocsResultExample: the abridged result in docs/check.md is a part of
// checkout/testdata/quote_result.golden.json (which the engine's golden test
// keeps current): every field it shows has the golden value, every array
// element it shows is in the golden array.
func TestDocsResultExample(t *testing.T) {
	golden, err := os.ReadFile("../../checkout/testdata/quote_result.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g any
	if err := json.Unmarshal(golden, &g); err != nil {
		t.Fatal(err)
	}
	found := false
	for i, js := range codeBlocks(t, "../../docs/check.md", "json") {
		var d map[string]any
		if json.Unmarshal([]byte(js), &d) != nil || d["check_id"] == nil {
			continue
		}
		found = true
		if path, ok := subset(d, g, "result"); !ok {
			t.Errorf("docs/check.md json block %d differs from the golden result at %s", i+1, path)
		}
	}
	if !found {
		t.Fatal("docs/check.md has no result example")
	}
}

// subset reports whether every field of doc is in got with the same value;
// an array element of doc must equal some element of got's array.
func subset(doc, got any, path string) (string, bool) {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range d {
			if p, ok := subset(v, g[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok {
			return path, false
		}
		for i, v := range d {
			match := false
			for _, gv := range g {
				if _, ok := subset(v, gv, ""); ok {
					match = true
					break
				}
			}
			if !match {
				return fmt.Sprintf("%s[%d]", path, i), false
			}
		}
		return "", true
	default:
		if doc != got {
			return fmt.Sprintf("%s (%v, golden %v)", path, doc, got), false
		}
		return "", true
	}
}
