package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"tillagent/internal/config"
)

// agentClient talks to a running tillagent over its local API.
type agentClient struct {
	http  *http.Client
	base  string
	token string
	json  bool // print the agent's JSON instead of a table
	out   io.Writer
	// callWait is how long a call waits for the agent's answer (0:
	// callTimeout), syncNowWait how long `sync now` does (0: callWait).
	callWait, syncNowWait time.Duration
}

// callTimeout bounds a call to the agent: a sale waits on the printer,
// whose steps the agent bounds well within it.
const callTimeout = 3 * time.Minute

// syncNowWait is how long `sync now` waits for the agent: it answers
// within 2 × sync.request_timeout (then sync.busy), which may be up to
// 10m; a minute more for the answer. Without the agent's config, the
// longest it may be.
func syncNowWait(cfg *config.Config) time.Duration {
	if cfg == nil {
		return 2*config.MaxSyncRequestTimeout + time.Minute
	}
	return 2*cfg.Sync.RequestTimeout + time.Minute
}

// agentFlags are the flags every agent command takes.
type agentFlags struct {
	config, socket, url, token *string
	json                       *bool
}

func addAgentFlags(fs *flag.FlagSet) agentFlags {
	return agentFlags{
		config: fs.String("config", "config.example.yaml", "configuration file (for api.socket)"),
		socket: fs.String("socket", "", "the agent's Unix socket; default api.socket of -config"),
		url:    fs.String("url", "", "the agent's TCP address instead, e.g. http://127.0.0.1:8765 (needs -token)"),
		token:  fs.String("token", os.Getenv("TILLAGENT_API_TOKEN"), "bearer token for -url (default $TILLAGENT_API_TOKEN)"),
		json:   fs.Bool("json", false, "print the agent's JSON answer (for scripts)"),
	}
}

func (f agentFlags) client(out io.Writer) (*agentClient, error) {
	c := &agentClient{json: *f.json, out: out, token: *f.token, syncNowWait: syncNowWait(nil)}
	if *f.url != "" {
		c.base = strings.TrimSuffix(*f.url, "/")
		c.http = &http.Client{}
		return c, nil
	}
	sock := *f.socket
	if sock == "" {
		cfg, err := config.Load(*f.config)
		if err != nil {
			return nil, err
		}
		sock, c.syncNowWait = cfg.API.Socket, syncNowWait(&cfg)
	}
	c.base = "http://localhost"
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return nil, fmt.Errorf("agent socket %s: %w (is tillagent running? `make run`)", sock, err)
			}
			return conn, nil
		},
	}}
	return c, nil
}

// apiError is the agent's error answer; Raw is it as it came, which
// -json prints.
type apiError struct {
	Status int
	Raw    []byte
	Body   struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  string `json:"detail"`
			Hint    string `json:"hint"`
		} `json:"error"`
	}
}

func (e *apiError) Error() string {
	b := e.Body.Error
	s := fmt.Sprintf("agent: %s (%d): %s", b.Code, e.Status, b.Message)
	if b.Detail != "" {
		s += "\ndetail: " + b.Detail
	}
	if b.Hint != "" {
		s += "\nhint: " + b.Hint
	}
	return s
}

// call sends body (nil for none) and decodes the answer into out. The raw
// answer is returned too, for --json.
func (c *agentClient) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	wait := cmp.Or(c.callWait, callTimeout)
	if method == http.MethodPost && path == "/v1/sync/now" && c.syncNowWait > 0 {
		wait = c.syncNowWait
	}
	ctx, cancel := context.WithTimeoutCause(ctx, wait, fmt.Errorf("%s %s: no answer from the agent within %s", method, path, wait))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, &unreachableError{err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode, Raw: raw}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error.Code == "" {
			return nil, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
		}
		return nil, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// unreachableError is a call that got no answer from the agent: its socket
// is missing, nothing listens, or it did not answer in time. tillctl exits
// 3 on it, so that a script tells "the agent is down" from "the agent said
// no" (exit 1).
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// exitUnreachable is tillctl's exit code when the agent did not answer.
const exitUnreachable = 3

// showError is what -json prints for a failed command, so that a script
// reads JSON whatever happened: the agent's error answer as it came, or
// one in the same shape with code "tillctl.unreachable" (no answer) or
// "tillctl.failed" (tillctl itself: a bad argument, a file it cannot
// read). The text goes to stderr as without -json.
func (c *agentClient) showError(err error) {
	var e *apiError
	if errors.As(err, &e) && json.Valid(e.Raw) {
		c.show(e.Raw, nil)
		return
	}
	code := "tillctl.failed"
	if errors.As(err, new(*unreachableError)) {
		code = "tillctl.unreachable"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
	c.show(b, nil)
}

// show prints raw JSON with --json, else runs the table printer.
func (c *agentClient) show(raw []byte, table func(w io.Writer)) {
	if c.json {
		var b bytes.Buffer
		if json.Indent(&b, bytes.TrimSpace(raw), "", "  ") == nil {
			b.WriteByte('\n')
			c.out.Write(b.Bytes())
			return
		}
		c.out.Write(raw)
		return
	}
	table(c.out)
}

// errIs reports whether err is the agent's refusal with code.
func errIs(err error, code string) bool {
	var e *apiError
	return errors.As(err, &e) && e.Body.Error.Code == code
}
