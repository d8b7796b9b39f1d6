package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"tillagent/internal/sale"
)

const maxBody = 1 << 20

func (s *Server) routesInit() {
	s.handle("GET /v1/status", s.status)
	s.handle("GET /v1/events", s.events)
	s.handle("GET /v1/cards/{code}", s.card)
	s.handle("POST /v1/quote", s.quote)
	s.handle("POST /v1/sales", s.sale)
	s.handle("POST /v1/sales/{id}/returns", s.ret)
	s.handle("POST /v1/shift/open", s.shiftOpen)
	s.handle("POST /v1/shift/close", s.shiftClose)
	s.handle("POST /v1/reports/x", s.reportX)
	s.handle("POST /v1/printer/continue", s.printerContinue)
	s.handle("GET /v1/openapi.yaml", s.openapi)
	s.handle("GET /metrics", s.metrics)
	s.handle("GET /{$}", s.page)
	for pattern, h := range s.o.Extra {
		s.handle(pattern, h)
	}
	// Anything else: a JSON error, never the mux's plain-text page; a known
	// path with another method is 405 with the methods it takes.
	methods := map[string][]string{}
	for _, p := range s.routes {
		m, path, _ := strings.Cut(p, " ")
		methods[path] = append(methods[path], m)
	}
	paths := http.NewServeMux()
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		paths.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			WriteError(w, http.StatusMethodNotAllowed, "request.method_not_allowed", "Ошибка кассовой программы",
				fmt.Sprintf("%s %s: this route takes %s", r.Method, r.URL.Path, allow), "")
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := paths.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		WriteError(w, http.StatusNotFound, "request.unknown_route", "Ошибка кассовой программы",
			fmt.Sprintf("%s %s is not an API route; see GET /v1/openapi.yaml", r.Method, r.URL.Path), "")
	})
}

// errorBody is every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"` // for the cashier, Russian
		Detail  string `json:"detail"`  // for the technician
		Hint    string `json:"hint,omitempty"`
	} `json:"error"`
}

// WriteError writes the API's error body: a stable code, the cashier's
// message and the technician's detail and hint. Routes the agent adds
// (Options.Extra) answer with it too.
func WriteError(w http.ResponseWriter, status int, code, message, detail, hint string) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Detail, b.Error.Hint = code, message, detail, hint
	WriteJSON(w, status, b)
}

// WriteJSON writes v as the JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
	if !bytes.HasSuffix(b, []byte("\n")) {
		w.Write([]byte("\n"))
	}
}

// fail writes err as the API error it is.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *sale.Error
	if !errors.As(err, &e) {
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
		WriteError(w, http.StatusInternalServerError, "agent.internal", "Внутренняя ошибка кассового агента", err.Error(), "see the agent log")
		return
	}
	status := map[sale.Class]int{
		sale.Invalid: http.StatusUnprocessableEntity, sale.NotFound: http.StatusNotFound,
		sale.Conflict: http.StatusConflict, sale.Unavailable: http.StatusServiceUnavailable,
		sale.Gone: http.StatusGone,
	}[e.Class]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if strings.HasPrefix(e.Code, "printer.") {
		s.o.Metrics.Add("tillagent_printer_errors_total", 1, "code", e.Code)
	}
	detail := ""
	if e.Err != nil {
		detail = e.Err.Error()
	}
	// A refusal is the request's outcome, not the agent's failure; counted
	// and logged so a technician sees, say, a cashier's tendered amounts
	// refused all day.
	s.o.Metrics.Add("tillagent_api_refused_total", 1, "code", e.Code)
	s.log.Info("request refused", "path", r.URL.Path, "code", e.Code, "detail", detail)
	WriteError(w, status, e.Code, e.Cashier, detail, e.Hint)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, so a UI typo never silently changes a sale.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, "request.bad_json", "Ошибка кассовой программы", "request body: "+err.Error(), "")
		return false
	}
	return true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.o.Status == nil {
		WriteJSON(w, http.StatusOK, map[string]any{})
		return
	}
	WriteJSON(w, http.StatusOK, s.o.Status(r.Context()))
}

func (s *Server) card(w http.ResponseWriter, r *http.Request) {
	info, err := s.o.Service.Card(r.Context(), r.PathValue("code"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, info)
}

func (s *Server) quote(w http.ResponseWriter, r *http.Request) {
	var req sale.QuoteRequest
	if !s.decode(w, r, &req) {
		return
	}
	res, err := s.o.Service.Quote(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

// idemKey takes the key from the Idempotency-Key header when the body has none.
func idemKey(r *http.Request, body *string) {
	if *body == "" {
		*body = r.Header.Get("Idempotency-Key")
	}
}

func (s *Server) sale(w http.ResponseWriter, r *http.Request) {
	var req sale.SaleRequest
	if !s.decode(w, r, &req) {
		return
	}
	idemKey(r, &req.IdempotencyKey)
	b, replayed, err := s.o.Service.Sale(r.Context(), req)
	s.answer(w, r, b, replayed, err)
}

func (s *Server) ret(w http.ResponseWriter, r *http.Request) {
	var req sale.ReturnRequest
	if !s.decode(w, r, &req) {
		return
	}
	idemKey(r, &req.IdempotencyKey)
	b, replayed, err := s.o.Service.Return(r.Context(), r.PathValue("id"), req)
	s.answer(w, r, b, replayed, err)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, b []byte, replayed bool, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, http.StatusOK, b)
		return
	}
	writeRaw(w, http.StatusCreated, b)
}

type shiftRequest struct {
	Cashier string `json:"cashier,omitempty"`
}

func (s *Server) shiftOpen(w http.ResponseWriter, r *http.Request) {
	var req shiftRequest
	if r.ContentLength != 0 && !s.decode(w, r, &req) {
		return
	}
	s.done(w, r, s.o.Service.OpenShift(r.Context(), req.Cashier), "shift opened")
}

// noBody refuses a body on routes that take none, as strictly as the
// others refuse unknown fields: an empty JSON object is fine.
func (s *Server) noBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength == 0 {
		return true
	}
	var none struct{}
	return s.decode(w, r, &none)
}

func (s *Server) shiftClose(w http.ResponseWriter, r *http.Request) {
	if s.noBody(w, r) {
		s.done(w, r, s.o.Service.CloseShift(r.Context()), "Z report printed, shift closed")
	}
}

func (s *Server) reportX(w http.ResponseWriter, r *http.Request) {
	if s.noBody(w, r) {
		s.done(w, r, s.o.Service.XReport(r.Context()), "X report printed")
	}
}

func (s *Server) printerContinue(w http.ResponseWriter, r *http.Request) {
	if s.noBody(w, r) {
		s.done(w, r, s.o.Service.ContinuePrint(r.Context()), "printing continued")
	}
}

func (s *Server) done(w http.ResponseWriter, r *http.Request, err error, what string) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "result": what, "printer": s.o.Service.Printer(r.Context())})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Write(OpenAPI)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.o.Metrics.Write(r.Context(), w)
}
