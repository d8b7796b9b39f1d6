package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// pageTmpl is the technician's page: the state of /v1/status as tables,
// readable in a browser on the till (api.tcp with ?access_token=, or a
// socket proxy). It refreshes itself every 5 s.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>tillagent {{.Till}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:20px}h2{font-size:16px;margin:1.2em 0 .3em}
table{border-collapse:collapse;min-width:30em}td{border-bottom:1px solid #ddd;padding:3px 10px 3px 0;vertical-align:top}
td:first-child{color:#666;width:14em}.bad{color:#b00;font-weight:600}.ok{color:#070}
</style></head>
<body><h1>Кассовый агент {{.Till}}</h1>
{{range .Sections}}<h2>{{.Title}}</h2><table>
{{range .Rows}}<tr><td>{{.Key}}</td><td class="{{.Class}}">{{.Value}}</td></tr>
{{end}}</table>{{end}}
<p>Команды техника: <code>tillctl status</code>, <code>tillctl printer status</code>, <code>tillctl devices</code>, <code>tillctl scan view</code>.
<a href="/v1/openapi.yaml">OpenAPI</a> · <a href="/metrics{{.Query}}">metrics</a></p>
</body></html>`))

type pageRow struct{ Key, Value, Class string }

type pageSection struct {
	Title string
	Rows  []pageRow
}

// sectionTitles names the status sections in the order they are shown.
var sectionTitles = []struct{ key, title string }{
	{"printer", "Принтер чеков"}, {"scanners", "Сканеры"}, {"journal", "Журнал"}, {"sync", "Связь с офисом"},
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	st := map[string]any{}
	if s.o.Status != nil {
		// Through JSON, so the page shows exactly what /v1/status says;
		// numbers as they are written there (decoded as float64, a
		// database of 4.7 MB would read 4.718592e+06).
		b, _ := json.Marshal(s.o.Status(r.Context()))
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		d.Decode(&st)
	}
	agent := pageSection{Title: "Агент"}
	for _, k := range []string{"version", "till_id", "store_id", "started_at", "settled"} {
		if v, ok := st[k]; ok {
			agent.Rows = append(agent.Rows, row(k, v))
		}
	}
	secs := []pageSection{agent}
	for _, t := range sectionTitles {
		sec := pageSection{Title: t.title}
		flatten("", st[t.key], &sec.Rows)
		secs = append(secs, sec)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q := ""
	if t := r.URL.Query().Get("access_token"); t != "" {
		q = "?access_token=" + url.QueryEscape(t) // the links work as the page did
	}
	pageTmpl.Execute(w, map[string]any{"Till": st["till_id"], "Sections": secs, "Query": template.URL(q)})
}

// flatten turns nested status values into rows "a.b: value".
func flatten(prefix string, v any, rows *[]pageRow) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(strings.TrimPrefix(prefix+"."+k, "."), x[k], rows)
		}
	case []any:
		if len(x) == 0 {
			*rows = append(*rows, pageRow{Key: prefix, Value: "—"})
		}
		for i, e := range x {
			name := fmt.Sprintf("%s[%d]", prefix, i)
			if m, ok := e.(map[string]any); ok && m["name"] != nil {
				name = fmt.Sprint(m["name"])
			}
			flatten(name, e, rows)
		}
	default:
		*rows = append(*rows, row(prefix, v))
	}
}

// row marks health codes and false flags that need a technician.
func row(k string, v any) pageRow {
	val := fmt.Sprint(v)
	class := ""
	switch {
	case strings.HasSuffix(val, ".ok") || v == true && (k == "ok" || k == "settled" || k == "configured"):
		class = "ok"
	case strings.Contains(val, ".") && (strings.HasPrefix(val, "scanner.") || strings.HasPrefix(val, "printer.")),
		v == false && (k == "ok" || k == "settled"), k == "error" || k == "last_error":
		class = "bad"
	}
	return pageRow{Key: k, Value: val, Class: class}
}
