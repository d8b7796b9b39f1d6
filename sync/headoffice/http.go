package headoffice

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// MaxBody is the largest request body head office reads.
const MaxBody = 64 << 20

// Handler serves the till and ERP endpoints (docs/sync.md):
//
//	POST /v1/till/journal          a till's journal batch (HTTP Basic: till id, secret)
//	GET  /v1/till/feed?cursor=C[&after=SEQ&limit=N&folded=W]   the till's store feed since C (paged with limit)
//	GET  /v1/till/feed?snapshot=1&after=CODE&limit=N[&folded=W]   a page of the whole replica (first load)
//	POST /v1/erp/tills             enrol a till {till_id, store_id} → {secret}
//	POST /v1/erp/import            replica JSON (or YAML with Content-Type: application/yaml)
//	POST /v1/erp/corrections       {id, card, points, reason}
//	GET  /v1/erp/journal?cursor=C&limit=N
//	GET  /v1/erp/reports/balances
//	GET  /v1/erp/reports/overdrafts
//	GET  /v1/erp/reports/expiring?days=N
//	GET  /v1/erp/reports/accruals?from=T&to=T
//	POST /v1/erp/maintain          expire lots and settle debt now (cmd/headoffice runs it on a schedule)
//	GET|PUT /v1/erp/stores/{store}/card-scope   {"scope": "all"|"home"}
//	POST /v1/erp/stores/{store}/cards            {"cards": [codes]} made home to the store
//	POST /v1/erp/tills/{till}/reset-feed         the till loads its replica afresh
//	GET  /v1/erp/reports/writeoffs               debt the negative-balance policy wrote off
//	GET  /v1/erp/conflicts[?all=1]               till entries head office holds with other content: both copies
//	POST /v1/erp/conflicts/{id}                  {"keep": "head_office", "reason"}: the till's copy then counts as a duplicate
//
// ERP endpoints take Authorization: Bearer TOKEN.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/till/journal", s.till(s.handleJournal))
	mux.HandleFunc("GET /v1/till/feed", s.till(s.handleFeed))
	mux.HandleFunc("POST /v1/erp/tills", s.erp(s.handleEnrol))
	mux.HandleFunc("POST /v1/erp/import", s.erp(s.handleImport))
	mux.HandleFunc("POST /v1/erp/corrections", s.erp(s.handleCorrection))
	mux.HandleFunc("GET /v1/erp/journal", s.erp(s.handleExport))
	mux.HandleFunc("GET /v1/erp/reports/balances", s.erp(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.Balances(r.Context())
		s.reply(w, b, err)
	}))
	mux.HandleFunc("GET /v1/erp/reports/overdrafts", s.erp(func(w http.ResponseWriter, r *http.Request) {
		o, err := s.Overdrafts(r.Context())
		s.reply(w, o, err)
	}))
	mux.HandleFunc("GET /v1/erp/reports/expiring", s.erp(func(w http.ResponseWriter, r *http.Request) {
		days, err := strconv.Atoi(r.URL.Query().Get("days"))
		if err != nil {
			httpError(w, http.StatusBadRequest, "expiring report: days=N required")
			return
		}
		e, err := s.ExpiringWithin(r.Context(), days)
		s.reply(w, e, err)
	}))
	mux.HandleFunc("GET /v1/erp/reports/accruals", s.erp(func(w http.ResponseWriter, r *http.Request) {
		from, err1 := time.Parse(time.RFC3339, r.URL.Query().Get("from"))
		to, err2 := time.Parse(time.RFC3339, r.URL.Query().Get("to"))
		if err1 != nil || err2 != nil {
			httpError(w, http.StatusBadRequest, "accruals report: from and to (RFC 3339) required")
			return
		}
		a, err := s.Accruals(r.Context(), from, to)
		s.reply(w, a, err)
	}))
	mux.HandleFunc("POST /v1/erp/maintain", s.erp(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Maintain(r.Context())
		s.reply(w, st, err)
	}))
	mux.HandleFunc("GET /v1/erp/stores/{store}/card-scope", s.erp(func(w http.ResponseWriter, r *http.Request) {
		sc, err := s.StoreCardScope(r.Context(), r.PathValue("store"))
		s.reply(w, sc, err)
	}))
	mux.HandleFunc("PUT /v1/erp/stores/{store}/card-scope", s.erp(s.handleSetScope))
	mux.HandleFunc("POST /v1/erp/stores/{store}/cards", s.erp(s.handleAssign))
	mux.HandleFunc("POST /v1/erp/tills/{till}/reset-feed", s.erp(func(w http.ResponseWriter, r *http.Request) {
		epoch, err := s.ResetFeed(r.Context(), r.PathValue("till"))
		if errors.Is(err, ErrUnknownTill) {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
		s.reply(w, map[string]any{"till_id": r.PathValue("till"), "epoch": epoch}, err)
	}))
	mux.HandleFunc("GET /v1/erp/conflicts", s.erp(s.handleConflicts))
	mux.HandleFunc("POST /v1/erp/conflicts/{id}", s.erp(s.handleSettle))
	mux.HandleFunc("GET /v1/erp/reports/writeoffs", s.erp(func(w http.ResponseWriter, r *http.Request) {
		wo, err := s.WriteOffs(r.Context())
		s.reply(w, wo, err)
	}))
	return mux
}

func (s *Server) handleSetScope(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Scope string `json:"scope"`
	}
	if err := decodeStrict(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, "card scope: "+err.Error())
		return
	}
	store := r.PathValue("store")
	err := s.SetCardScope(r.Context(), store, req.Scope)
	switch {
	case errors.Is(err, ErrScopeConflict):
		httpError(w, http.StatusConflict, err.Error())
	case err != nil && req.Scope != ScopeAll && req.Scope != ScopeHome:
		httpError(w, http.StatusBadRequest, err.Error())
	default:
		sc, err2 := s.StoreCardScope(r.Context(), store)
		s.reply(w, sc, errors.Join(err, err2))
	}
}

func (s *Server) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Cards []string `json:"cards"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "assign cards: "+err.Error())
		return
	}
	n, err := s.AssignCards(r.Context(), r.PathValue("store"), req.Cards)
	if errors.Is(err, ErrUnknownCards) {
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.reply(w, map[string]int{"assigned": n}, err)
}

type tillHandler func(w http.ResponseWriter, r *http.Request, tillID, storeID string)

func (s *Server) till(h tillHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			httpError(w, http.StatusUnauthorized, "till credentials required (HTTP Basic: till id and secret)")
			return
		}
		storeID, err := s.authTill(r.Context(), id, secret)
		if errors.Is(err, ErrUnauthorized) {
			s.log.Warn("till authentication failed", "till", id, "remote", r.RemoteAddr, "why", err)
			httpError(w, http.StatusUnauthorized, "unknown till or wrong secret: head office's log says why; enrol the till again if it is not known, and give its agent the new secret (sync.secret_file)")
			return
		}
		if err != nil {
			s.log.Error("till authentication", "till", id, "err", err)
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		h(w, r, id, storeID)
	}
}

func (s *Server) erp(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.authERP(tok) {
			httpError(w, http.StatusUnauthorized, "ERP token required (Authorization: Bearer TOKEN)")
			return
		}
		h(w, r)
	}
}

func (s *Server) handleJournal(w http.ResponseWriter, r *http.Request, tillID, _ string) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("read journal batch of till %s: %v", tillID, err))
		return
	}
	b, err := wire.DecodeBatch(data)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if b.TillID != tillID {
		// A till may push only its own journal.
		httpError(w, http.StatusForbidden, fmt.Sprintf("till %s may not push the journal of till %s", tillID, b.TillID))
		return
	}
	res, err := s.Ingest(r.Context(), b)
	s.reply(w, res, err)
}

func (s *Server) handleFeed(w http.ResponseWriter, r *http.Request, tillID, storeID string) {
	if st := r.URL.Query().Get("store"); st != "" && st != storeID {
		httpError(w, http.StatusForbidden, fmt.Sprintf("till %s belongs to store %s, not %s", tillID, storeID, st))
		return
	}
	q := r.URL.Query()
	if q.Get("snapshot") == "1" {
		limit, _ := strconv.Atoi(q.Get("limit"))
		req := SnapshotRequest{After: q.Get("after"), Limit: limit}
		if q.Has("folded") {
			v := q.Get("folded")
			req.Folded = &v
		}
		f, err := s.SnapshotPage(r.Context(), tillID, req)
		s.reply(w, f, err)
		return
	}
	if c := q.Get("cursor"); c != "" {
		if _, _, err := parseCursor(c); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("feed for till %s: %v", tillID, err))
			return
		}
	}
	if a := q.Get("after"); a != "" {
		if n, err := strconv.ParseInt(a, 10, 64); err != nil || n < 0 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("feed for till %s: bad page position after=%q", tillID, a))
			return
		}
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		// Paged only when asked: a till that does not page takes the
		// whole delta, as before.
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 50000 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("feed for till %s: limit %q: want 1-50000", tillID, l))
			return
		}
		limit = n
	}
	req := FeedRequest{Cursor: q.Get("cursor"), After: q.Get("after"), Limit: limit}
	if q.Has("folded") {
		v := q.Get("folded")
		req.Folded = &v
	}
	f, err := s.FeedPage(r.Context(), tillID, req)
	s.reply(w, f, err)
}

func (s *Server) handleEnrol(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TillID  string `json:"till_id"`
		StoreID string `json:"store_id"`
	}
	if err := decodeStrict(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, "enrol: "+err.Error())
		return
	}
	secret, err := s.Enrol(r.Context(), req.TillID, req.StoreID)
	s.reply(w, map[string]string{"till_id": req.TillID, "secret": secret}, err)
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, "erp import: "+err.Error())
		return
	}
	format := "json"
	if strings.Contains(r.Header.Get("Content-Type"), "yaml") {
		format = "yaml"
	}
	rep, err := store.ParseReplica(data, format)
	if err == nil {
		var st ImportStats
		if st, err = s.Import(r.Context(), rep); err == nil {
			s.reply(w, st, nil)
			return
		}
		if !requestsFault(err) {
			// Not the document's fault (the database failed, a deadlock,
			// the request cancelled; a value the database refuses, class
			// 22 or 23, is the document's): the transaction rolled back.
			s.log.Error("erp import failed", "err", err)
			httpError(w, http.StatusInternalServerError, "erp import failed, nothing written: "+err.Error())
			return
		}
	}
	// Validation problems: one line per record, all of them.
	var lines []string
	var joined interface{ Unwrap() []error }
	var ref *RefusedImport
	if errors.As(err, &ref) {
		err = ref.Err
	}
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			lines = append(lines, e.Error())
		}
	} else {
		lines = []string{err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	json.NewEncoder(w).Encode(map[string]any{"error": "erp import refused, nothing written", "errors": lines})
}

func (s *Server) handleCorrection(w http.ResponseWriter, r *http.Request) {
	var c Correction
	if err := decodeStrict(r, &c); err != nil {
		httpError(w, http.StatusBadRequest, "correction: "+err.Error())
		return
	}
	res, err := s.Correct(r.Context(), c)
	switch {
	case err == nil:
	case requestsFault(err):
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	default:
		// Head office's failure, not the correction's: rolled back.
		s.log.Error("erp correction failed", "id", c.ID, "card", c.Card, "err", err)
		httpError(w, http.StatusInternalServerError, "erp correction failed, nothing written: "+err.Error())
		return
	}
	s.reply(w, res, nil)
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	e, err := s.ExportJournal(r.Context(), r.URL.Query().Get("cursor"), limit)
	s.reply(w, e, err)
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	if errors.Is(err, ErrBadRequest) {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.log.Error("request failed", "err", err)
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Warn("write reply", "err", err)
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
