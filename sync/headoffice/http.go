package headoffice

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"tillagent/internal/jsonkeys"
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
//	GET  /v1/erp/journal?cursor=C&limit=N   (limit 1-10000, default 1000; above 10000: 10000)
//	GET  /v1/erp/reports/balances?after=CODE&limit=N   a page of cards' balances (limit default 1000, max 10000)
//	GET  /v1/erp/reports/balances?card=CODE            one card's balance (unknown: 404)
//	GET  /v1/erp/reports/overdrafts?before=N&limit=N&open=1   a page, newest first (open: cards still in debt)
//	GET  /v1/erp/reports/expiring?days=N&after=CODE&limit=N   a page of cards' points lapsing within N days
//	GET  /v1/erp/reports/accruals?from=T&to=T
//	POST /v1/erp/maintain          expire lots and settle debt now (cmd/headoffice runs it on a schedule)
//	GET|PUT /v1/erp/stores/{store}/card-scope   {"scope": "all"|"home"}
//	POST /v1/erp/stores/{store}/cards            {"cards": [codes]} made home to the store
//	POST /v1/erp/tills/{till}/retire             the till is admitted no more (until enrolled again)
//	POST /v1/erp/tills/{till}/reset-feed         the till loads its replica afresh
//	GET  /v1/erp/reports/writeoffs?before=N&limit=N  a page of debt the negative-balance policy wrote off, newest first
//	GET  /v1/erp/conflicts?all=1&after=K&limit=N  a page, oldest first, of till entries head office holds with other content: both copies
//	POST /v1/erp/conflicts/{id}                  {"keep": "head_office", "reason"}: the till's copy then counts as a duplicate
//	GET  /v1/erp/reports/tills                   every till: watermark, entries waiting behind a gap, rejected ones
//	GET  /v1/erp/rejected?before=K&limit=N        a page of till entries kept as rejected (on the chain, not applied), newest first
//	GET  /v1/erp/reports/unknown-cards?after=CODE&since=T&limit=N   a page of cards tills' entries named while head office lacked them
//	GET  /v1/erp/reports/retake-kept             tills whose entries retake-journal kept, not taken yet
//
// ERP endpoints take Authorization: Bearer TOKEN.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Pushes and feed pages queue for a place (admit.go); a card fetch has
	// a cashier and a customer waiting on it, and is one card.
	mux.HandleFunc("POST /v1/till/journal", s.till(s.handleJournal, true))
	mux.HandleFunc("GET /v1/till/feed", s.till(s.handleFeed, true))
	mux.HandleFunc("POST /v1/till/cards", s.till(s.handleFetchCards, false))
	mux.HandleFunc("POST /v1/erp/tills", s.erp(s.handleEnrol))
	mux.HandleFunc("POST /v1/erp/import", s.erp(s.handleImport))
	mux.HandleFunc("POST /v1/erp/corrections", s.erp(s.handleCorrection))
	mux.HandleFunc("GET /v1/erp/journal", s.erp(s.handleExport))
	mux.HandleFunc("GET /v1/erp/reports/balances", s.erp(s.handleBalances))
	mux.HandleFunc("GET /v1/erp/reports/overdrafts", s.erp(s.handleOverdrafts))
	mux.HandleFunc("GET /v1/erp/reports/expiring", s.erp(s.handleExpiring))
	mux.HandleFunc("GET /v1/erp/reports/accruals", s.erp(s.handleAccruals))
	mux.HandleFunc("GET /v1/erp/reports/tills", s.erp(func(w http.ResponseWriter, r *http.Request) {
		ts, err := s.Tills(r.Context())
		s.reply(w, r, ts, err)
	}))
	mux.HandleFunc("GET /v1/erp/reports/retake-kept", s.erp(func(w http.ResponseWriter, r *http.Request) {
		k, err := s.KeptTills(r.Context())
		s.reply(w, r, k, err)
	}))
	mux.HandleFunc("GET /v1/erp/reports/unknown-cards", s.erp(s.handleUnknownCards))
	mux.HandleFunc("GET /v1/erp/rejected", s.erp(newestReport(s, "rejected entries", s.RejectedPage)))
	mux.HandleFunc("POST /v1/erp/maintain", s.erp(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Maintain(r.Context())
		s.reply(w, r, st, err)
	}))
	mux.HandleFunc("GET /v1/erp/stores/{store}/card-scope", s.erp(func(w http.ResponseWriter, r *http.Request) {
		sc, err := s.StoreCardScope(r.Context(), r.PathValue("store"))
		s.reply(w, r, sc, err)
	}))
	mux.HandleFunc("PUT /v1/erp/stores/{store}/card-scope", s.erp(s.handleSetScope))
	mux.HandleFunc("POST /v1/erp/stores/{store}/cards", s.erp(s.handleAssign))
	mux.HandleFunc("POST /v1/erp/tills/{till}/retire", s.erp(func(w http.ResponseWriter, r *http.Request) {
		at, err := s.Retire(r.Context(), r.PathValue("till"))
		s.reply(w, r, map[string]any{"till_id": r.PathValue("till"), "retired_at": at}, err)
	}))
	mux.HandleFunc("POST /v1/erp/tills/{till}/reset-feed", s.erp(func(w http.ResponseWriter, r *http.Request) {
		epoch, err := s.ResetFeed(r.Context(), r.PathValue("till"))
		s.reply(w, r, map[string]any{"till_id": r.PathValue("till"), "epoch": epoch}, err)
	}))
	mux.HandleFunc("GET /v1/erp/conflicts", s.erp(s.handleConflicts))
	mux.HandleFunc("POST /v1/erp/conflicts/{id}", s.erp(s.handleSettle))
	mux.HandleFunc("GET /v1/erp/reports/writeoffs", s.erp(newestReport(s, "write-offs report", s.WriteOffsPage)))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	return s.observe(advertiseGzip(jsonErrors(mux)))
}

// jsonErrors answers the requests mux has no route for (404, and 405 with
// its Allow header) with a JSON error like every other answer, not the
// mux's plain text.
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := mux.Handler(r); pattern == "" {
			rec := &headerRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			switch rec.code {
			case http.StatusNotFound:
				httpError(w, rec.code, fmt.Sprintf("no endpoint %s (docs/sync.md lists them)", r.URL.Path))
				return
			case http.StatusMethodNotAllowed:
				allow := rec.header.Get("Allow")
				w.Header().Set("Allow", allow)
				httpError(w, rec.code, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow))
				return
			}
		}
		mux.ServeHTTP(w, r) // a route, or the mux's redirect to one
	})
}

// headerRecorder keeps the status and headers the mux's own handlers (not
// found, method not allowed) give, and drops their text.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (s *Server) handleSetScope(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Scope string `json:"scope"`
	}
	if err := decodeStrict(w, r, 1<<20, &req); err != nil {
		decodeFailed(w, "card scope", err)
		return
	}
	store := r.PathValue("store")
	err := s.SetCardScope(r.Context(), store, req.Scope)
	switch {
	case errors.Is(err, ErrScopeConflict):
		httpError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.reply(w, r, nil, err)
	default:
		sc, err := s.StoreCardScope(r.Context(), store)
		s.reply(w, r, sc, err)
	}
}

func (s *Server) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Cards []string `json:"cards"`
	}
	// 100,000 codes of up to 64 characters and their quotes.
	if err := decodeStrict(w, r, 8<<20, &req); err != nil {
		decodeFailed(w, "assign cards", err)
		return
	}
	n, err := s.AssignCards(r.Context(), r.PathValue("store"), req.Cards)
	if errors.Is(err, ErrUnknownCards) {
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.reply(w, r, map[string]int{"assigned": n}, err)
}

type tillHandler func(w http.ResponseWriter, r *http.Request, tillID, storeID string)

// till authenticates a till's request and runs h with its till and store;
// a queued request first waits for a place (Server.enter) once it is
// known it can be a till's.
func (s *Server) till(h tillHandler, queued bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, secret, leaf, ok := s.identify(w, r)
		if !ok {
			return
		}
		if queued {
			release, ok := s.enter(w, r)
			if !ok {
				return
			}
			defer release()
		}
		var storeID string
		err := s.retryLost(func() (err error) {
			if leaf != nil {
				storeID, err = s.authTillCert(r.Context(), id, leaf.NotBefore)
			} else {
				storeID, err = s.authTill(r.Context(), id, secret)
			}
			return err
		})
		if errors.Is(err, ErrUnauthorized) {
			s.log.Warn("till authentication failed", "till", id, "remote", r.RemoteAddr, "why", err)
			httpError(w, http.StatusUnauthorized, "unknown till or wrong secret: head office's log says why; enrol the till again if it is not known, and give its agent the new secret (sync.secret_file)")
			return
		}
		if err != nil {
			s.log.Error("till authentication", "till", id, "err", err)
			if !s.lostReply(w, err) {
				httpError(w, http.StatusServiceUnavailable, err.Error())
			}
			return
		}
		s.noteSeen(id, r.UserAgent())
		if err := checkRequestText(r); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		h(w, r, id, storeID)
	}
}

// identify is who a till request says it is: its till id and secret
// (HTTP Basic) or certificate. When no enrolled till can be it, it answers
// 401 and returns !ok. It asks nothing of the database.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (id, secret string, leaf *x509.Certificate, ok bool) {
	id, secret, basic := r.BasicAuth()
	leaf = tillCertificate(r)
	if c := lapsedChain(r, time.Now()); c != nil {
		// The handshake checked the dates; a till syncing more often than
		// the idle timeouts keeps its connection for ever, and its
		// certificate (or a copied key) would never lapse. Closing the
		// connection makes its next request hand-shake again, refused by
		// the TLS layer for the same reason.
		s.log.Warn("till authentication failed", "till", leaf.Subject.CommonName, "remote", r.RemoteAddr, "certificate", c.Subject.CommonName,
			"valid_from", c.NotBefore, "valid_until", c.NotAfter)
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusUnauthorized, fmt.Sprintf("till %s's TLS certificate (%s) is valid from %s until %s, not now: renew it",
			leaf.Subject.CommonName, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339)))
		return "", "", nil, false
	}
	if anchor := chainAnchor(r); anchor != nil && s.trustedCA != nil && !s.trustedCA(anchor) {
		// The bundle dropped the CA (a compromised or retired CA) since
		// this connection's handshake; the next handshake fails.
		s.log.Warn("till authentication failed", "till", leaf.Subject.CommonName, "remote", r.RemoteAddr, "ca", anchor.Subject.CommonName,
			"why", "the CA is no longer in -tls-client-ca")
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusUnauthorized, fmt.Sprintf("till %s's TLS certificate is signed under %s, no longer in head office's tills' CA bundle",
			leaf.Subject.CommonName, anchor.Subject.CommonName))
		return "", "", nil, false
	}
	switch {
	case leaf != nil && basic && id != leaf.Subject.CommonName:
		s.log.Warn("till authentication failed", "till", id, "certificate", leaf.Subject.CommonName, "remote", r.RemoteAddr)
		httpError(w, http.StatusUnauthorized, fmt.Sprintf("the TLS certificate is till %s's, the credentials till %s's", leaf.Subject.CommonName, id))
		return "", "", nil, false
	case leaf != nil:
		id = leaf.Subject.CommonName
	case !basic:
		httpError(w, http.StatusUnauthorized, "till credentials required (HTTP Basic: till id and secret, or the till's TLS certificate)")
		return "", "", nil, false
	}
	if !tillIDRe.MatchString(id) {
		// No enrolled till has such an id (Enrol checks it), and
		// PostgreSQL may not even take it (U+0000, bytes not UTF-8).
		httpError(w, http.StatusUnauthorized, "unknown till: a till id is 1-37 of A-Z a-z 0-9 _ . : / -")
		return "", "", nil, false
	}
	return id, secret, leaf, true
}

// tillCertificate is the request's client certificate naming a till (its
// subject's common name), when it presented one that the server's client
// CAs verified (`headoffice serve -tls-client-ca`); nil otherwise.
func tillCertificate(r *http.Request) *x509.Certificate {
	if chain := verifiedChain(r); chain != nil {
		return chain[0]
	}
	return nil
}

// chainAnchor is the CA the handshake verified the till's certificate to
// (tillCertificate), the last of its chain; nil without one.
func chainAnchor(r *http.Request) *x509.Certificate {
	if chain := verifiedChain(r); chain != nil {
		return chain[len(chain)-1]
	}
	return nil
}

// verifiedChain is the chain the handshake verified the till's
// certificate by, the till's first; nil when the request has no till
// certificate.
func verifiedChain(r *http.Request) []*x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	if chain := r.TLS.VerifiedChains[0]; chain[0].Subject.CommonName != "" {
		return chain
	}
	return nil
}

// lapsedChain is the first certificate of the chain verifying the till's
// certificate (tillCertificate) that is not valid at now, the till's or a
// CA's; nil when all are, or the request has no till certificate.
func lapsedChain(r *http.Request, now time.Time) *x509.Certificate {
	if tillCertificate(r) == nil {
		return nil
	}
	for _, c := range r.TLS.VerifiedChains[0] {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return c
		}
	}
	return nil
}

func (s *Server) erp(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why, msg := s.erpRefusal(r); why != "" {
			// Each cause its own answer, and logged: an ERP job's operator
			// tells a missing header from a stale token, and head office's
			// from a token never set.
			s.log.Warn("ERP authentication failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
			httpError(w, http.StatusUnauthorized, msg)
			return
		}
		if err := checkRequestText(r); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		h(w, r)
	}
}

// erpRefusal says why r is not an ERP job's request, for head office's
// log and for the job (empty: it is one).
func (s *Server) erpRefusal(r *http.Request) (why, msg string) {
	h := r.Header.Get("Authorization")
	// The scheme is case-insensitive (RFC 7235).
	scheme, tok, _ := strings.Cut(h, " ")
	switch {
	case s.erpToken == "":
		return "no ERP token is set at head office", "the ERP API is off: head office was started without an ERP token (headoffice serve -erp-token-file or $HEADOFFICE_ERP_TOKEN)"
	case h == "":
		return "no Authorization header", "ERP token required (Authorization: Bearer TOKEN)"
	case !strings.EqualFold(scheme, "Bearer"):
		return fmt.Sprintf("Authorization scheme %.20q, not Bearer", scheme), "ERP token required as Authorization: Bearer TOKEN, not another scheme"
	case !s.authERP(tok):
		return "wrong ERP token", "wrong ERP token: give the job the token in head office's -erp-token-file (read when head office starts)"
	}
	return "", ""
}

// pathIDs are the wildcards of the routes (Handler).
var pathIDs = []string{"store", "till", "id"}

// checkRequestText refuses what the handlers would otherwise misread or
// pass on to PostgreSQL: a query that does not parse (r.URL.Query drops
// such a pair silently), a parameter given twice (which value counts
// would be a guess: the handlers read the first), and U+0000 or bytes
// that are not UTF-8 in a parameter's name or value or in a path id
// (PostgreSQL refuses both in text: the answer would be a 500 quoting
// its error). The error names the parameter or the path id.
func checkRequestText(r *http.Request) error {
	op := cmp.Or(r.Pattern, r.Method+" "+r.URL.Path)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%s: query: %v", op, err) // it names the bad pair
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		if len(vs) > 1 {
			return fmt.Errorf("%s: parameter %q given %d times: give it once", op, k, len(vs))
		}
		if badText(k) || slices.ContainsFunc(vs, badText) {
			return fmt.Errorf("%s: parameter %q holds U+0000 or bytes that are not UTF-8", op, k)
		}
	}
	for _, name := range pathIDs {
		if v := r.PathValue(name); badText(v) {
			return fmt.Errorf("%s: %s %q in the path holds U+0000 or bytes that are not UTF-8", op, name, v)
		}
	}
	return nil
}

// badText reports text head office cannot store or look up.
func badText(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }

func (s *Server) handleJournal(w http.ResponseWriter, r *http.Request, tillID, _ string) {
	data, err := readBody(w, r, MaxBody)
	if err != nil {
		decodeFailed(w, "read journal batch of till "+tillID, err)
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
	s.reply(w, r, res, err)
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
		var f *wire.Feed
		var shared *cachedPage
		err := s.retryLost(func() (err error) {
			f, shared, err = s.snapshotPage(r.Context(), tillID, req)
			return err
		})
		if err == nil && shared != nil && acceptsGzip(r) {
			s.replyPage(w, r, f, shared)
			return
		}
		s.reply(w, r, f, err)
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
	req := FeedRequest{Cursor: q.Get("cursor"), After: q.Get("after"), Limit: limit, Held: q.Get("held") == "1"}
	if q.Has("folded") {
		v := q.Get("folded")
		req.Folded = &v
	}
	var f *wire.Feed
	err := s.retryLost(func() (err error) {
		f, err = s.FeedPage(r.Context(), tillID, req)
		return err
	})
	s.reply(w, r, f, err)
}

func (s *Server) handleEnrol(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TillID  string `json:"till_id"`
		StoreID string `json:"store_id"`
	}
	if err := decodeStrict(w, r, 1<<20, &req); err != nil {
		decodeFailed(w, "enrol", err)
		return
	}
	secret, err := s.Enrol(r.Context(), req.TillID, req.StoreID)
	s.reply(w, r, map[string]string{"till_id": req.TillID, "secret": secret}, err)
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r, MaxBody)
	if err != nil {
		decodeFailed(w, "erp import", err)
		return
	}
	format := "json"
	if strings.Contains(r.Header.Get("Content-Type"), "yaml") {
		format = "yaml"
	}
	rep, err := store.ParseReplica(data, format)
	if err == nil {
		var st ImportStats
		// An import is idempotent: run again after a lost connection.
		if err = s.retryLost(func() (err error) { st, err = s.Import(r.Context(), rep); return err }); err == nil {
			s.reply(w, r, st, nil)
			return
		}
		if s.lostReply(w, err) {
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
	if err := decodeStrict(w, r, 1<<20, &c); err != nil {
		decodeFailed(w, "correction", err)
		return
	}
	// A correction is idempotent by its id: run again after a lost connection.
	var res CorrectionResult
	err := s.retryLost(func() (err error) { res, err = s.Correct(r.Context(), c); return err })
	switch {
	case err == nil:
	case s.lostReply(w, err):
		return
	case requestsFault(err):
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	default:
		// Head office's failure, not the correction's: rolled back.
		s.log.Error("erp correction failed", "id", c.ID, "card", c.Card, "err", err)
		httpError(w, http.StatusInternalServerError, "erp correction failed, nothing written: "+err.Error())
		return
	}
	s.reply(w, r, res, nil)
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := pageQuery(w, q, "journal export", MaxExportLimit, "cursor", "limit")
	if !ok {
		return
	}
	e, err := s.ExportJournal(r.Context(), q.Get("cursor"), limit)
	s.reply(w, r, e, err)
}

// handleBalances answers one card (card=CODE, unknown: 404) or a page of
// all cards (after=CODE, limit=N).
func (s *Server) handleBalances(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "balances report", "card", "after", "limit"); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Has("card") {
		code := q.Get("card")
		switch {
		case code == "":
			httpError(w, http.StatusBadRequest, "balances report: card= is empty (want card=CODE)")
		case q.Has("after") || q.Has("limit"):
			httpError(w, http.StatusBadRequest, "balances report: card= asks for one card; after= and limit= page the whole report, not both")
		default:
			b, err := s.CardBalanceOf(r.Context(), code)
			if errors.Is(err, ErrUnknownCard) {
				httpError(w, http.StatusNotFound, err.Error())
				return
			}
			s.reply(w, r, b, err)
		}
		return
	}
	limit, err := queryLimit(q, "balances report", MaxBalanceLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.BalancesPage(r.Context(), q.Get("after"), limit)
	s.reply(w, r, p, err)
}

func (s *Server) handleOverdrafts(w http.ResponseWriter, r *http.Request) {
	const op = "overdrafts report"
	q := r.URL.Query()
	if err := onlyParams(q, op, "before", "limit", "open"); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	open := false
	if q.Has("open") {
		var err error
		if open, err = strconv.ParseBool(q.Get("open")); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("%s: open %q: want 1 or true (cards still in debt), 0 or false (all)", op, q.Get("open")))
			return
		}
	}
	limit, err := queryLimit(q, op, MaxNewestLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.OverdraftsPage(r.Context(), q.Get("before"), limit, open)
	s.reply(w, r, p, err)
}

// newestReport answers a newest-first report paged with before and limit
// (write-offs, rejected entries; the overdrafts take open too).
func newestReport[P any](s *Server, op string, page func(ctx context.Context, before string, limit int) (P, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, ok := pageQuery(w, q, op, MaxNewestLimit, "before", "limit")
		if !ok {
			return
		}
		p, err := page(r.Context(), q.Get("before"), limit)
		s.reply(w, r, p, err)
	}
}

func (s *Server) handleExpiring(w http.ResponseWriter, r *http.Request) {
	const op = "expiring report"
	q := r.URL.Query()
	if err := onlyParams(q, op, "days", "after", "limit"); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	days, err := strconv.Atoi(q.Get("days"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "expiring report: days=N required")
		return
	}
	limit, err := queryLimit(q, op, MaxNewestLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.ExpiringPage(r.Context(), days, q.Get("after"), limit)
	s.reply(w, r, p, err)
}

func (s *Server) handleUnknownCards(w http.ResponseWriter, r *http.Request) {
	const op = "unknown cards report"
	q := r.URL.Query()
	limit, ok := pageQuery(w, q, op, MaxNewestLimit, "after", "since", "limit")
	if !ok {
		return
	}
	var since time.Time
	if q.Has("since") {
		var err error
		if since, err = queryTime(q, op, "since"); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	p, err := s.UnknownCardsPage(r.Context(), q.Get("after"), since, limit)
	s.reply(w, r, p, err)
}

func (s *Server) handleAccruals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "accruals report", "from", "to"); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	from, err1 := queryTime(q, "accruals report", "from")
	to, err2 := queryTime(q, "accruals report", "to")
	if err := errors.Join(err1, err2); err != nil {
		httpError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	a, err := s.Accruals(r.Context(), from, to)
	s.reply(w, r, a, err)
}

// onlyParams refuses query parameters other than names: a misspelt one
// would otherwise be ignored silently.
func onlyParams(q url.Values, op string, names ...string) error {
	for k := range q {
		if !slices.Contains(names, k) {
			return fmt.Errorf("%s: unknown parameter %q (want %s)", op, k, strings.Join(names, ", "))
		}
	}
	return nil
}

// pageQuery checks that a paged request has only the parameters names and
// a limit of queryLimit, answering 400 itself when not: ok false.
func pageQuery(w http.ResponseWriter, q url.Values, op string, max int, names ...string) (limit int, ok bool) {
	err := onlyParams(q, op, names...)
	if err == nil {
		limit, err = queryLimit(q, op, max)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return limit, true
}

// queryLimit reads limit=N: absent is 0 (the default), N must be a
// positive integer, and one above max is cut to max.
func queryLimit(q url.Values, op string, max int) (int, error) {
	if !q.Has("limit") {
		return 0, nil
	}
	v := q.Get("limit")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: limit %q is not a positive integer (at most %d)", op, v, max)
	}
	return min(n, max), nil
}

// queryTime reads a required RFC 3339 time parameter.
func queryTime(q url.Values, op, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, fmt.Errorf("%s: %s is required (an RFC 3339 time, e.g. %s=2026-12-01T00:00:00Z)", op, name, name)
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %s %q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00+03:00; in a URL the + must be escaped as %%2B, a bare + reads as a space)", op, name, v)
	}
	return t, nil
}

// decodeStrict decodes the request's JSON body, at most limit bytes, into
// v (a pointer to a struct), refusing what encoding/json lets through: a
// key twice in one object (encoding/json keeps the last: a correction's
// card named twice would go to the second), an unknown field, a field
// named in another case than v's ("ID" for "id": encoding/json matches
// it), and anything after the object ("{…} {…}" is not two corrections).
// Only v's own fields are compared by name, not those of structs nested
// in it (the ERP bodies have none). decodeFailed answers its error.
func decodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	data, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if err := jsonkeys.Check(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// decodeFailed answers a body decodeStrict refused: 413 when it was too
// large (as the journal endpoint answers), else 400; what names the
// operation.
func decodeFailed(w http.ResponseWriter, what string, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: body larger than %d bytes", what, tooLarge.Limit))
		return
	}
	var coding unsupportedEncoding
	if errors.As(err, &coding) {
		httpError(w, http.StatusUnsupportedMediaType, what+": "+err.Error())
		return
	}
	httpError(w, http.StatusBadRequest, what+": "+err.Error())
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrUnknownStore), errors.Is(err, ErrUnknownTill):
		httpError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, ErrUnauthorized):
		// A till retired while its request ran (sqlLockTill).
		s.log.Warn("till refused", "method", r.Method, "path", r.URL.Path, "why", err)
		httpError(w, http.StatusUnauthorized, "unknown till or wrong secret: head office's log says why")
		return
	}
	if s.lostReply(w, err) {
		return
	}
	if err != nil {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Encoded whole before the status goes out: a value that cannot be
	// encoded (a time past year 9999) is a 500 the till retries, not a 200
	// with a cut body.
	var body []byte
	if a, ok := v.(interface{ AppendJSON([]byte) ([]byte, error) }); ok {
		// A feed page: encoded by hand, the same bytes, into a buffer used
		// again: a page of 5,000 cards is 7 MB, which a new buffer zeroes
		// first.
		buf := replyBuffers.Get().(*[]byte)
		defer func() { putReplyBuffer(buf, body) }()
		body, err = a.AppendJSON((*buf)[:0])
	} else {
		body, err = json.Marshal(v)
	}
	if err != nil {
		s.log.Error("encode reply", "method", r.Method, "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, "encode reply: "+err.Error())
		return
	}
	if err := writeJSON(w, r, append(body, '\n')); err != nil {
		s.log.Warn("write reply", "err", err)
	}
}

// replyBuffers hold the encoded feed pages' bytes, up to maxPooledReply
// (a page of 20,000 cards).
var replyBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledReply = 32 << 20

// putReplyBuffer gives buf back to replyBuffers holding b's array (b nil:
// the array buf held), unless it has grown past maxPooledReply.
func putReplyBuffer(buf *[]byte, b []byte) {
	if b == nil {
		b = *buf
	}
	if cap(b) <= maxPooledReply {
		*buf = b[:0]
		replyBuffers.Put(buf)
	}
}

// lostReply answers 503 when err is a lost database connection (the next
// request reconnects) and says whether it did. Whether a write that lost
// its connection committed is unknown: the caller sends it again, which
// every ERP write and till push allows.
func (s *Server) lostReply(w http.ResponseWriter, err error) bool {
	var after afterLost
	if !s.lostConn(err) && !errors.As(err, &after) {
		return false
	}
	httpError(w, http.StatusServiceUnavailable, "head office lost its database connection, send the request again: "+err.Error())
	return true
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
