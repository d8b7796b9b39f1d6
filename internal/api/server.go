// Package api is the agent's local HTTP/JSON API for the till UI: on a Unix
// socket and, when configured, on 127.0.0.1 with a bearer token. It refuses
// what a shop floor (or a web page in the till's browser) should never be
// able to do: non-loopback peers, a wrong token, an unknown Host (DNS
// rebinding) and a foreign Origin.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"tillagent/internal/sale"
)

// Options configure a Server.
type Options struct {
	Service *sale.Service
	// Status builds GET /v1/status (devices, shift, sync, version).
	Status func(context.Context) any
	Events *Broker
	// Metrics is served on /metrics; Backlog fills the journal gauge.
	Metrics *Metrics
	// Token is required as "Authorization: Bearer …" on the TCP listener.
	Token string
	// AllowedOrigins is the exact list of browser origins allowed to call
	// ("http://localhost:3000"); a request with any other Origin is refused.
	AllowedOrigins []string
	// Extra routes (demo scanner, sync) registered by the agent.
	Extra  map[string]http.HandlerFunc
	Logger *slog.Logger
}

// Server is the local API.
type Server struct {
	o       Options
	mux     *http.ServeMux
	log     *slog.Logger
	routes  []string // "METHOD /path" as registered, for the OpenAPI test
	origins map[string]bool
}

// New builds the server and its routes.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Events == nil {
		o.Events = NewBroker(64)
	}
	s := &Server{o: o, mux: http.NewServeMux(), log: o.Logger, origins: map[string]bool{}}
	for _, origin := range o.AllowedOrigins {
		s.origins[origin] = true
	}
	s.routesInit()
	return s
}

// Routes lists "METHOD /path" of every route served.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	route := pattern
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h(sw, r)
		s.o.Metrics.Add("tillagent_http_requests_total", 1, "route", route, "status", strconv.Itoa(sw.status))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// listener kinds, for the guard.
type via int

const (
	viaUnix via = iota
	viaTCP
)

// handler wraps the routes with the guard of one listener.
func (s *Server) handler(v via, port string) http.Handler {
	hosts := map[string]bool{"localhost": true, "127.0.0.1": true, "[::1]": true}
	if port != "" {
		hosts = map[string]bool{"localhost:" + port: true, "127.0.0.1:" + port: true, "[::1]:" + port: true}
	}
	if v == viaUnix {
		hosts["tillagent"] = true // what clients of the socket usually send
		hosts["unix"] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v == viaTCP {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				s.refuse(w, r, http.StatusForbidden, "auth.not_loopback", "peer %s is not on this machine", r.RemoteAddr)
				return
			}
		}
		if !hosts[strings.ToLower(r.Host)] {
			s.refuse(w, r, http.StatusForbidden, "auth.bad_host", "Host %q is not this agent (allowed: localhost, 127.0.0.1)", r.Host)
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" && !s.origins[origin] {
			s.refuse(w, r, http.StatusForbidden, "auth.bad_origin", "Origin %q is not in api.allowed_origins", origin)
			return
		}
		if origin != "" {
			// An allowed page may read every answer, errors included.
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Vary", "Origin")
			w.Header().Set("Access-Control-Expose-Headers", "Idempotent-Replayed")
			if r.Method == http.MethodOptions {
				// A preflight never carries the token; the request after it does.
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
				w.Header().Set("Access-Control-Max-Age", "600")
				if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
					w.Header().Set("Access-Control-Allow-Private-Network", "true")
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if v == viaTCP && r.URL.Path != "/v1/openapi.yaml" && !s.tokenOK(r) {
			s.refuse(w, r, http.StatusUnauthorized, "auth.bad_token", "missing or wrong bearer token")
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// tokenOK checks the bearer token. A browser's EventSource and a plain
// link to the status page cannot send headers, so GET requests may carry
// it as ?access_token= instead.
func (s *Server) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && r.Method == http.MethodGet {
		got, ok = r.URL.Query().Get("access_token"), true
	}
	return ok && s.o.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) == 1
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code, format string, args ...any) {
	s.o.Metrics.Add("tillagent_http_refused_total", 1, "code", code)
	s.log.Warn("request refused", "code", code, "path", r.URL.Path, "remote", r.RemoteAddr, "detail", fmt.Sprintf(format, args...))
	WriteError(w, status, code, "Доступ запрещён", fmt.Sprintf(format, args...), "")
}

// ListenUnix opens the Unix socket at path with mode and, if group is set,
// that group. A stale socket file left by a crash is replaced; a socket
// another agent still listens on is an error.
func ListenUnix(path string, mode os.FileMode, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another agent is listening on it", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: chmod: %w", path, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("api socket %s: group: %w", path, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("api socket %s: chown to group %s: %w", path, group, err)
		}
	}
	return ln, nil
}

// ServeUnix serves on a listener from ListenUnix until ctx ends; the
// socket file is removed when the listener closes.
func (s *Server) ServeUnix(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handler(viaUnix, ""))
}

// ListenTCP opens addr, which must be a loopback address, and returns the
// listener (tests pass port 0) for ServeTCP.
func ListenTCP(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("api tcp %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("api tcp %s: only loopback addresses are allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api tcp %s: %w", addr, err)
	}
	return ln, nil
}

// ServeTCP serves on ln with the token guard until ctx ends.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	if s.o.Token == "" {
		ln.Close()
		return errors.New("api tcp: a token is required")
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return s.serve(ctx, ln, s.handler(viaTCP, port))
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		// Graceful: a sale being printed finishes (the service detaches it
		// from the request), the rest get a short grace.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}
