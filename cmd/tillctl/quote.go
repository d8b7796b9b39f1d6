package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
)

func init() {
	register(command{Name: "quote", Summary: "price a check: against a replica file (--replica, no daemon) or the running agent", Run: runQuote})
}

func runQuote(ctx context.Context, args []string) error {
	return quote(ctx, args, os.Stdout)
}

// quote imports the replica into a throw-away store, loads the inputs the
// way the agent does (journal empty) and prints checkout.Quote's result.
func quote(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("quote", flag.ContinueOnError)
	replica := fs.String("replica", "", "replica file (.json, .yaml); required")
	checkPath := fs.String("check", "", "check JSON file (docs/check.md); required")
	cards := fs.String("cards", "", "presented card codes, comma-separated")
	redeem := fs.String("redeem", "", "points the cashier asks to spend")
	redeemCard := fs.String("redeem-card", "", "card to spend from (default: the first that can)")
	at := fs.String("at", "", "moment of the sale: RFC 3339 (2026-11-23T12:00:00+03:00) or store-local 2026-11-23T12:00; default now")
	showInput := fs.Bool("input", false, "print the engine's input instead of the result")
	af := addAgentFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tillctl quote [--replica FILE] --check CHECK.json [--cards CODE,…] [--redeem N] [--at TIME]\n"+
			"without --replica the running agent prices the check with the till's current state (--at and --input need --replica)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *checkPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	check, err := readCheck(*checkPath)
	if err != nil {
		return err
	}
	if *replica == "" {
		if *at != "" || *showInput {
			return fmt.Errorf("--at and --input need --replica: the agent prices at its own clock")
		}
		*af.json = true // the engine's result is the output, as with --replica
		c, err := af.client(out)
		if err != nil {
			return err
		}
		req := map[string]any{"check": check, "cards": cardList(*cards), "redeem_card": *redeemCard}
		if *redeem != "" {
			req["redeem"] = *redeem
		}
		raw, err := c.call(ctx, "POST", "/v1/quote", req, nil)
		if err != nil {
			return err
		}
		c.show(raw, nil)
		return nil
	}
	dir, err := os.MkdirTemp("", "tillctl-quote-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "quote.db"), TillID: "quote"})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.ImportFile(ctx, *replica); err != nil {
		return err
	}
	loc, err := s.Location(ctx, check.StoreID)
	if err != nil {
		return fmt.Errorf("check %s: %w", *checkPath, err)
	}
	now, err := parseAt(*at, loc)
	if err != nil {
		return err
	}
	var codes []string
	for _, c := range strings.Split(*cards, ",") {
		if c = strings.TrimSpace(c); c != "" {
			codes = append(codes, c)
		}
	}
	in, err := s.QuoteInput(ctx, check, codes, now)
	if err != nil {
		return err
	}
	if *redeem != "" {
		p, err := checkout.ParsePoints(*redeem)
		if err != nil {
			return fmt.Errorf("--redeem: %w", err)
		}
		in.Redeem = &p
	}
	in.RedeemCard = *redeemCard
	var v any = in
	if !*showInput {
		res, err := checkout.Quote(in)
		if err != nil {
			return err
		}
		v = res
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// readCheck decodes the check file strictly: unknown fields, trailing data
// after the check, and a missing id, store_id or line field are errors (a
// forgotten price must not quietly price a line at 0).
func readCheck(path string) (checkout.Check, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return checkout.Check{}, err
	}
	fail := func(format string, args ...any) (checkout.Check, error) {
		return checkout.Check{}, fmt.Errorf("check %s: %s", path, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c checkout.Check
	if err := dec.Decode(&c); err != nil {
		return checkout.Check{}, fmt.Errorf("check %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("data after the check at byte %d (one JSON object per file)", dec.InputOffset())
	}
	// Presence, which the typed decode cannot see: read the keys again.
	var raw struct {
		ID      *string                      `json:"id"`
		StoreID *string                      `json:"store_id"`
		Lines   []map[string]json.RawMessage `json:"lines"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fail("%v", err)
	}
	if raw.ID == nil || strings.TrimSpace(*raw.ID) == "" {
		return fail(`missing "id"`)
	}
	if raw.StoreID == nil || strings.TrimSpace(*raw.StoreID) == "" {
		return fail(`missing "store_id"`)
	}
	if len(c.Lines) == 0 {
		return fail("no lines")
	}
	for i, l := range raw.Lines {
		for _, k := range []string{"no", "product_id", "qty", "price"} {
			if v, ok := l[k]; !ok || string(v) == "null" {
				return fail("lines[%d] (line %d, product %q): missing %q", i, c.Lines[i].No, c.Lines[i].ProductID, k)
			}
		}
	}
	return c, nil
}

// parseAt reads --at: an RFC 3339 instant, or a store-local wall time.
func parseAt(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	lt, err := checkout.ParseLocalTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 or YYYY-MM-DDTHH:MM[:SS] store-local", s)
	}
	return lt.In(loc), nil
}
