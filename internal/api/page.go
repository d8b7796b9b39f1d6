package api

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// pageTmpl is the technician's page: the same state as /v1/status, readable
// in a browser on the till (over api.tcp with the token, or a socket proxy).
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>tillagent</title>
<style>body{font:14px sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style></head>
<body><h1>tillagent</h1>
<p>Состояние кассового агента. Команды для техника: <code>tillctl status</code>, <code>tillctl printer status</code>, <code>tillctl devices</code>.</p>
<pre>{{.}}</pre>
<p><a href="/v1/openapi.yaml">OpenAPI</a> · <a href="/metrics">metrics</a></p>
</body></html>`))

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	var st any = map[string]any{}
	if s.o.Status != nil {
		st = s.o.Status(r.Context())
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, string(b))
}
