package api

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The OpenAPI document lists exactly the routes the server serves, and
// every $ref in it resolves: a UI team generating a client from it gets
// the real API.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI    string                    `yaml:"openapi"`
		Paths      map[string]map[string]any `yaml:"paths"`
		Components map[string]map[string]any `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "delete", "patch":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	noop := func(http.ResponseWriter, *http.Request) {}
	// The routes the agent adds: sync always, the demo scanner in demo mode.
	s := New(Options{Extra: map[string]http.HandlerFunc{
		"GET /v1/sync": noop, "POST /v1/sync/now": noop, "POST /v1/demo/scan": noop,
	}})
	var served []string
	for _, r := range s.Routes() {
		served = append(served, strings.Replace(r, " /{$}", " /", 1))
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("documented:\n%s\n\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	for _, m := range regexp.MustCompile(`\$ref: "#/components/([a-zA-Z]+)/([A-Za-z]+)"`).FindAllStringSubmatch(string(OpenAPI), -1) {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("$ref to missing #/components/%s/%s", m[1], m[2])
		}
	}
}
