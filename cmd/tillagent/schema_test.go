package main

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"tillagent/internal/api"
)

// openAPI is the served document, parsed for the answer checks below.
type openAPI struct {
	Paths      map[string]map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas   map[string]any `yaml:"schemas"`
		Responses map[string]any `yaml:"responses"`
	} `yaml:"components"`
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	var d openAPI
	if err := yaml.Unmarshal(api.OpenAPI, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func (d *openAPI) resolve(s any) map[string]any {
	m, _ := s.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		name := ref[strings.LastIndex(ref, "/")+1:]
		switch {
		case strings.Contains(ref, "/schemas/"):
			m, _ = d.Components.Schemas[name].(map[string]any)
		case strings.Contains(ref, "/responses/"):
			m, _ = d.Components.Responses[name].(map[string]any)
		default:
			return nil
		}
	}
	return m
}

// responseSchema is the JSON schema of path+method+status.
func (d *openAPI) responseSchema(t *testing.T, method, path, status string) map[string]any {
	t.Helper()
	op, ok := d.Paths[path][strings.ToLower(method)]
	if !ok {
		t.Fatalf("%s %s not documented", method, path)
	}
	resps, _ := op["responses"].(map[string]any)
	r, ok := resps[status]
	if !ok {
		r, ok = resps["default"]
	}
	if !ok {
		t.Fatalf("%s %s: status %s not documented", method, path, status)
	}
	content, _ := d.resolve(r)["content"].(map[string]any)
	js, _ := content["application/json"].(map[string]any)
	if js == nil {
		t.Fatalf("%s %s %s: no application/json schema", method, path, status)
	}
	return d.resolve(js["schema"])
}

// conform reports the fields of v that the schema does not declare, and
// type mismatches, walking objects and arrays. A schema with
// additionalProperties true (or no properties) accepts any fields.
func (d *openAPI) conform(where string, schema map[string]any, v any, errs *[]string) {
	if schema == nil {
		return
	}
	typ, _ := schema["type"].(string)
	switch x := v.(type) {
	case map[string]any:
		if typ != "" && typ != "object" {
			*errs = append(*errs, where+": object, documented "+typ)
			return
		}
		props, _ := schema["properties"].(map[string]any)
		open := schema["additionalProperties"] == true || props == nil
		extra, _ := schema["additionalProperties"].(map[string]any)
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := props[k]; ok {
				d.conform(where+"."+k, d.resolve(p), x[k], errs)
			} else if extra != nil {
				d.conform(where+"."+k, d.resolve(extra), x[k], errs)
			} else if !open {
				*errs = append(*errs, where+"."+k+": not in the OpenAPI document")
			}
		}
	case []any:
		if typ != "" && typ != "array" {
			*errs = append(*errs, where+": array, documented "+typ)
			return
		}
		for i, e := range x {
			if i < 3 {
				d.conform(where+"[]", d.resolve(schema["items"]), e, errs)
			}
		}
	case string:
		if typ != "" && typ != "string" {
			*errs = append(*errs, where+": string, documented "+typ)
		}
	case float64:
		if typ != "" && typ != "integer" && typ != "number" {
			*errs = append(*errs, where+": number, documented "+typ)
		}
	case bool:
		if typ != "" && typ != "boolean" {
			*errs = append(*errs, where+": boolean, documented "+typ)
		}
	}
}

// The answers the agent really sends use only the fields and types the
// OpenAPI document declares: a client generated from it reads them all.
func TestAnswersMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	h := newHarness(t, nil)
	check := func(method, docPath, path string, body any, wantStatus int) []byte {
		t.Helper()
		st, b := h.do(method, path, body, nil)
		if st != wantStatus {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, st, wantStatus, b)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var errs []string
		doc.conform(method+" "+docPath, doc.responseSchema(t, method, docPath, itoa(st)), v, &errs)
		for _, e := range errs {
			t.Error(e)
		}
		return b
	}
	check("POST", "/v1/shift/open", "/v1/shift/open", nil, 200)
	check("GET", "/v1/status", "/v1/status", nil, 200)
	check("GET", "/v1/cards/{code}", "/v1/cards/"+card, nil, 200)
	lines := []map[string]any{line(1, "1001", "2", "89.90"), line(2, "3001", "1", "210.00")}
	check("POST", "/v1/quote", "/v1/quote", map[string]any{"check": map[string]any{"lines": lines}, "cards": []string{card, "2600000000017"}, "redeem": "40"}, 200)
	check("POST", "/v1/quote", "/v1/quote", map[string]any{"check": map[string]any{"lines": lines}, "cards": []string{"2800000000011"}}, 200)
	check("POST", "/v1/quote", "/v1/quote", map[string]any{"check": map[string]any{"lines": lines}, "cards": []string{"2700000000014"}, "redeem": "100"}, 200)
	b := check("POST", "/v1/sales", "/v1/sales", saleBody("oa-1", []string{card}, "40", "500.00", lines...), 201)
	var a saleAnswer
	json.Unmarshal(b, &a)
	check("POST", "/v1/sales/{id}/returns", "/v1/sales/"+a.SaleID+"/returns", map[string]any{"idempotency_key": "oa-r"}, 201)
	check("POST", "/v1/sales", "/v1/sales", saleBody("oa-2", nil, "", "1.00", line(1, "1001", "2", "89.90")), 422)
	check("GET", "/v1/cards/{code}", "/v1/cards/2900000000995", nil, 404)
	check("POST", "/v1/reports/x", "/v1/reports/x", nil, 200)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
