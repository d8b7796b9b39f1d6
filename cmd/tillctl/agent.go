package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"tillagent/checkout"
)

// The commands below are clients of a running agent's local API.
func init() {
	for _, c := range []command{
		{Name: "status", Summary: "the agent's state: printer, scanners, journal, sync", Run: agentCmd("status", cmdStatus)},
		{Name: "card", Summary: "look a loyalty card up: CODE", Run: agentCmd("card", cmdCard)},
		{Name: "sale", Summary: "sell a check through the agent (prints the fiscal receipt)", Run: agentCmd("sale", cmdSale)},
		{Name: "return", Summary: "return a sale, fully or some lines: SALE_ID", Run: agentCmd("return", cmdReturn)},
		{Name: "shift open", Summary: "open the fiscal shift through the agent", Run: agentCmd("shift open", cmdShiftOpen)},
		{Name: "shift close", Summary: "close the fiscal shift (Z report) through the agent", Run: agentCmd("shift close", simplePost("/v1/shift/close"))},
		{Name: "x", Summary: "print the X report through the agent", Run: agentCmd("x", simplePost("/v1/reports/x"))},
		{Name: "continue", Summary: "finish a printout interrupted by paper out, through the agent", Run: agentCmd("continue", simplePost("/v1/printer/continue"))},
		{Name: "sync status", Summary: "head-office sync state", Run: agentCmd("sync status", cmdSync("GET", "/v1/sync"))},
		{Name: "sync now", Summary: "push the journal and pull the replica now", Run: agentCmd("sync now", cmdSync("POST", "/v1/sync/now"))},
		{Name: "demo scan", Summary: "type CODE on the demo's virtual serial scanner", Run: agentCmd("demo scan", cmdDemoScan)},
		{Name: "events", Summary: "follow the agent's events (scans, device health, sync); Ctrl-C to stop", Run: agentCmd("events", cmdEvents(""))},
		{Name: "scan view", Summary: "follow the scans the agent classifies, and scanner health; Ctrl-C to stop", Run: agentCmd("scan view", cmdEvents("scan,health"))},
	} {
		register(c)
	}
}

// agentRun is one agent command after its flags are parsed; args are its
// positional arguments.
type agentRun func(ctx context.Context, c *agentClient, args []string) error

// agentCmd wires the common flags; a command declares its own on the
// FlagSet it receives before parsing. Flags may come before or after the
// positional arguments (`tillctl card CODE -json`).
func agentCmd(name string, run func(fs *flag.FlagSet) agentRun) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		af := addAgentFlags(fs)
		f := run(fs)
		var pos []string
		for {
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			args = fs.Args()[1:]
		}
		c, err := af.client(os.Stdout)
		if err == nil {
			err = f(ctx, c, pos)
		}
		if err != nil && *af.json {
			(&agentClient{json: true, out: os.Stdout}).showError(err)
		}
		return err
	}
}

func table(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func cmdStatus(fs *flag.FlagSet) agentRun {
	return func(ctx context.Context, c *agentClient, _ []string) error {
		var st struct {
			Version string
			TillID  string `json:"till_id"`
			StoreID string `json:"store_id"`
			Settled bool
			Printer struct {
				Configured, OK bool
				Error, Code    string
				Status         map[string]any
				LastFD         uint32 `json:"last_fd"`
			}
			Scanners []struct{ Name, Code, Error string }
			Journal  struct {
				Backlog       int
				Documents     map[string]int
				Kept          keptStatus
				DBBytes       int64  `json:"db_bytes"`
				DiskFreeBytes int64  `json:"disk_free_bytes"`
				DiskError     string `json:"disk_error"`
			}
			Sync    map[string]any
			Offline map[string]any
		}
		raw, err := c.call(ctx, "GET", "/v1/status", nil, &st)
		if err != nil {
			return err
		}
		c.show(raw, func(w io.Writer) {
			printer := "none"
			switch {
			case st.Printer.Configured && st.Printer.OK:
				printer = fmt.Sprintf("ok, shift open %v, last FD %d", st.Printer.Status["shift_open"], st.Printer.LastFD)
				for _, k := range []string{"paper_out", "cover_open", "shift_expired", "waiting_continue", "receipt_open"} {
					if st.Printer.Status[k] == true {
						printer += ", " + strings.ReplaceAll(k, "_", " ")
					}
				}
			case st.Printer.Configured:
				printer = st.Printer.Code + ": " + st.Printer.Error
			}
			database := st.Journal.DiskError
			if database == "" {
				database = fmt.Sprintf("%s, %s free on its disk", sizeText(st.Journal.DBBytes), sizeText(st.Journal.DiskFreeBytes))
			}
			rows := [][]string{
				{"agent", st.Version + ", till " + st.TillID + ", store " + st.StoreID},
				{"sales settled", fmt.Sprint(st.Settled)},
				{"printer", printer},
				{"journal backlog", fmt.Sprintf("%d entries not acknowledged by head office", st.Journal.Backlog)},
				{"database", database},
				{"documents", docsText(st.Journal.Documents)},
				{"journal kept", st.Journal.Kept.String()},
			}
			for _, s := range st.Scanners {
				v := s.Code
				if s.Error != "" {
					v += ": " + s.Error
				}
				rows = append(rows, []string{"scanner " + s.Name, v})
			}
			switch {
			case st.Sync == nil || st.Sync["configured"] == false:
				rows = append(rows, []string{"sync", "not configured (sells offline only)"})
			default:
				// An old error is shown with its time, not as if it were
				// the state.
				// The backlog is the journal's, shown above.
				v := fmt.Sprint(st.Sync["state"])
				if st.Sync["cycle_running"] == true {
					v += ", a cycle is running"
				}
				if l := loadNote(st.Sync); l != "" {
					v += ", " + l
				}
				if n, _ := st.Sync["refused_entries_count"].(float64); n > 0 {
					v += fmt.Sprintf(", %s entries refused by head office", plain(n))
				}
				e, _ := st.Sync["last_error"].(string)
				switch pull, _ := st.Sync["last_pull"].(string); {
				case st.Sync["state"] == "ok" && pull != "":
					// Recovered: an old error is history, not the state.
					v += ", last feed " + pull
				case e != "":
					v += ", last error"
					if at, _ := st.Sync["last_error_at"].(string); at != "" {
						v += " at " + at
					}
					v += ": " + e
				}
				rows = append(rows, []string{"sync", v})
			}
			if st.Offline != nil {
				rows = append(rows, []string{"offline rules", offlineNote(st.Offline)})
			}
			table(w, rows)
		})
		return nil
	}
}

func cmdCard(fs *flag.FlagSet) agentRun {
	return func(ctx context.Context, c *agentClient, args []string) error {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: tillctl card [flags] CODE")
			return errUsage
		}
		var card struct {
			Code, Kind, State                 string
			ProgramName                       string `json:"program_name"`
			BlockReason                       string `json:"block_reason"`
			CanSpend                          bool   `json:"can_spend"`
			Reason                            string `json:"reason"`
			Balance, Spendable, Pending, Debt string
			Expiring                          []struct {
				LotID     string `json:"lot_id"`
				Points    string
				ExpiresAt string `json:"expires_at"`
			}
			ExpiringDays int `json:"expiring_days"`
			Tier         *struct{ Rule, Basis, Amount, Percent string }
		}
		raw, err := c.call(ctx, "GET", "/v1/cards/"+url.PathEscape(args[0]), nil, &card)
		if err != nil {
			return err
		}
		c.show(raw, func(w io.Writer) {
			rows := [][]string{
				{"card", card.Code + " (" + card.Kind + ", " + card.State + ")"},
				{"program", card.ProgramName},
				{"balance", card.Balance},
				{"spendable", card.Spendable},
				{"pending activation", card.Pending},
			}
			if !card.CanSpend {
				why := card.Reason
				if card.BlockReason != "" {
					why += ": " + card.BlockReason
				}
				rows = append(rows, []string{"cannot spend", why})
			}
			if card.Debt != "0" {
				rows = append(rows, []string{"debt", card.Debt})
			}
			if card.Tier != nil && card.Tier.Percent != "" {
				rows = append(rows, []string{"tier", card.Tier.Percent + " % (" + card.Tier.Basis + " " + card.Tier.Amount + ")"})
			}
			for _, l := range card.Expiring {
				rows = append(rows, []string{fmt.Sprintf("expiring ≤ %d days", card.ExpiringDays), l.Points + " on " + l.ExpiresAt})
			}
			table(w, rows)
		})
		return nil
	}
}

// keyOr returns key, or a new idempotency key (printed, so that the
// operator can repeat the command with it after a timeout).
func keyOr(key string) string {
	if key != "" {
		return key
	}
	b := make([]byte, 12)
	rand.Read(b)
	key = "tillctl-" + hex.EncodeToString(b)
	fmt.Fprintln(os.Stderr, "idempotency key:", key)
	return key
}

// retryHint adds, to a refusal that a retry may cure (the printer, an
// unsettled sale, a lost answer), how to repeat the same operation safely.
func retryHint(what, key string) func(error) error {
	return func(err error) error {
		var e *apiError
		if errors.As(err, &e) && e.Status < 500 {
			return err
		}
		return fmt.Errorf("%w\nretry the same %s with -key %s (it is never done twice)", err, what, key)
	}
}

// cardBalance is a card's balance line of a sale or return answer.
type cardBalance struct{ Code, Balance, Spendable string }

func balanceRows(cs []cardBalance) [][]string {
	var rows [][]string
	for _, cb := range cs {
		rows = append(rows, []string{"card " + cb.Code, "balance " + cb.Balance + ", spendable " + cb.Spendable})
	}
	return rows
}

func cardList(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func cmdSale(fs *flag.FlagSet) agentRun {
	checkPath := fs.String("check", "", "check JSON file (docs/check.md); required")
	cards := fs.String("cards", "", "presented card codes, comma-separated")
	redeem := fs.String("redeem", "", "points to spend")
	cash := fs.String("cash", "", "cash tendered (default: what is due)")
	electronic := fs.String("electronic", "", "paid by card")
	key := fs.String("key", "", "idempotency key: the same key again returns the same sale (default: a new one, printed)")
	cashier := fs.String("cashier", "", "cashier name")
	return func(ctx context.Context, c *agentClient, _ []string) error {
		if *checkPath == "" {
			fmt.Fprintln(os.Stderr, "usage: tillctl sale -check CHECK.json [-cards CODE,…] [-redeem N] [-cash X] [-electronic Y] [-key K]")
			return errUsage
		}
		check, err := readCheck(*checkPath)
		if err != nil {
			return err
		}
		req := map[string]any{"check": check, "cards": cardList(*cards), "cashier": *cashier}
		if *redeem != "" {
			req["redeem"] = *redeem
		}
		pay := map[string]any{}
		if *electronic != "" {
			pay["electronic"] = *electronic
		}
		if *cash == "" && *electronic == "" {
			// Pay exactly what is due: ask the agent for the quote first.
			var q struct{ Payable string }
			if _, err := c.call(ctx, "POST", "/v1/quote", map[string]any{"check": check, "cards": req["cards"], "redeem": req["redeem"]}, &q); err != nil {
				return err
			}
			pay["cash"] = q.Payable
		} else if *cash != "" {
			pay["cash"] = *cash
		}
		req["payments"] = pay
		req["idempotency_key"] = keyOr(*key)
		retry := retryHint("sale", req["idempotency_key"].(string))
		var a struct {
			SaleID string `json:"sale_id"`
			Fiscal struct {
				FD, FP       uint32
				Total        string
				Change       string
				PrintPending bool `json:"print_pending"`
			}
			Quote struct{ Sum, Discount, Redeemed, Payable string }
			Cards []cardBalance
		}
		raw, err := c.call(ctx, "POST", "/v1/sales", req, &a)
		if err != nil {
			return retry(err)
		}
		c.show(raw, func(w io.Writer) {
			rows := [][]string{
				{"sale", a.SaleID},
				{"fiscal document", fmt.Sprintf("FD %d, FP %d", a.Fiscal.FD, a.Fiscal.FP)},
				{"sum / discount / points", a.Quote.Sum + " / " + a.Quote.Discount + " / " + a.Quote.Redeemed},
				{"receipt total", a.Fiscal.Total},
				{"change", a.Fiscal.Change},
			}
			if a.Fiscal.PrintPending {
				rows = append(rows, []string{"paper", "out: load paper, then `tillctl continue`"})
			}
			table(w, append(rows, balanceRows(a.Cards)...))
		})
		return nil
	}
}

func cmdReturn(fs *flag.FlagSet) agentRun {
	lines := fs.String("lines", "", "lines returned as NO:QTY,… (e.g. 1:1,3:0.5); default everything not yet returned")
	refund := fs.String("refund", "", "cash or electronic (default: as the sale was paid)")
	key := fs.String("key", "", "idempotency key (default: a new one, printed)")
	return func(ctx context.Context, c *agentClient, args []string) error {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: tillctl return [-lines NO:QTY,…] [-refund cash|electronic] [-key K] SALE_ID")
			return errUsage
		}
		req := map[string]any{}
		var rl []map[string]any
		for _, p := range cardList(*lines) {
			no, qty, ok := strings.Cut(p, ":")
			var n int
			if _, err := fmt.Sscan(no, &n); !ok || err != nil {
				return fmt.Errorf("-lines %q: want NO:QTY", p)
			}
			if _, err := checkout.ParseQty(qty); err != nil {
				return fmt.Errorf("-lines %q: %w", p, err)
			}
			rl = append(rl, map[string]any{"no": n, "qty": qty})
		}
		if rl != nil {
			req["lines"] = rl
		}
		if *refund != "" {
			req["refund"] = *refund
		}
		req["idempotency_key"] = keyOr(*key)
		retry := retryHint("return", req["idempotency_key"].(string))
		var a struct {
			ReturnID string `json:"return_id"`
			Fiscal   struct {
				FD, FP uint32
				Total  string
			}
			Return struct{ Refund, Withheld string }
			Cards  []cardBalance
		}
		raw, err := c.call(ctx, "POST", "/v1/sales/"+url.PathEscape(args[0])+"/returns", req, &a)
		if err != nil {
			return retry(err)
		}
		c.show(raw, func(w io.Writer) {
			rows := [][]string{
				{"return", a.ReturnID},
				{"fiscal document", fmt.Sprintf("FD %d, FP %d", a.Fiscal.FD, a.Fiscal.FP)},
				{"refund", a.Return.Refund},
			}
			if a.Return.Withheld != "0.00" && a.Return.Withheld != "" {
				rows = append(rows, []string{"withheld for spent points", a.Return.Withheld})
			}
			table(w, append(rows, balanceRows(a.Cards)...))
		})
		return nil
	}
}

func cmdShiftOpen(fs *flag.FlagSet) agentRun {
	cashier := fs.String("cashier", "", "cashier name (tag 1021)")
	return func(ctx context.Context, c *agentClient, _ []string) error {
		return printDone(ctx, c, "/v1/shift/open", map[string]any{"cashier": *cashier})
	}
}

func simplePost(path string) func(*flag.FlagSet) agentRun {
	return func(*flag.FlagSet) agentRun {
		return func(ctx context.Context, c *agentClient, _ []string) error { return printDone(ctx, c, path, nil) }
	}
}

func printDone(ctx context.Context, c *agentClient, path string, body any) error {
	var a struct{ Result string }
	raw, err := c.call(ctx, "POST", path, body, &a)
	if err != nil {
		return err
	}
	c.show(raw, func(w io.Writer) { fmt.Fprintln(w, a.Result) })
	return nil
}

func cmdSync(method, path string) func(*flag.FlagSet) agentRun {
	return func(*flag.FlagSet) agentRun {
		return func(ctx context.Context, c *agentClient, _ []string) error {
			var st map[string]any
			raw, err := c.call(ctx, method, path, nil, &st)
			if err != nil {
				return err
			}
			c.show(raw, func(w io.Writer) {
				var rows [][]string
				if l := loadNote(st); l != "" {
					rows = append(rows, []string{"replica", l})
				}
				if o, ok := st["offline"].(map[string]any); ok {
					rows = append(rows, []string{"offline", offlineNote(o)})
				}
				for _, k := range sortedKeys(st) {
					if k == "offline" {
						continue
					}
					// A list shows one item a line, so that entries can be
					// told apart.
					items, ok := st[k].([]any)
					if !ok {
						rows = append(rows, []string{k, plain(st[k])})
						continue
					}
					for i, it := range items {
						name := ""
						if i == 0 {
							name = k
						}
						rows = append(rows, []string{name, listItem(it)})
					}
				}
				table(w, rows)
			})
			return nil
		}
	}
}

// loadNote says where the replica's load from head office stands when it
// has not finished ("" once it has): never loaded, or a first load running
// or cut off (before a restart too), with the cards loaded so far. Head
// office gives no total, so none is shown.
func loadNote(sync map[string]any) string {
	if loaded, ok := sync["replica_loaded"].(bool); !ok || loaded {
		return ""
	}
	cards, _ := sync["initial_load_cards"].(float64)
	switch {
	case sync["initial_load"] == true:
		return fmt.Sprintf("first load from head office running: %.0f cards loaded so far (head office gives no total)", cards)
	case cards > 0:
		// The count is saved with the load's position: right after a
		// restart too.
		return fmt.Sprintf("first load from head office not finished: stopped after %.0f cards, which the till holds and sells on (held to the offline caps); the load goes on after them at the next cycle; check the link to head office (sync.url)", cards)
	}
	return "replica never loaded from head office: the till needs it to sell; check the link to head office (sync.url)"
}

// offlineNote says which of head office's offline rules are in force
// (the agent's "offline" status): whether no card may redeem on the till
// and why first, then the caps, the till cap used and the feed's age.
func offlineNote(o map[string]any) string {
	if e, _ := o["error"].(string); e != "" {
		return "unknown: " + e
	}
	str := func(k string) string { v, _ := o[k].(string); return v }
	secs := func(k string) time.Duration { v, _ := o[k].(float64); return time.Duration(v * float64(time.Second)) }
	capText := func(k string) string {
		if v := str(k); v != "" && v != "0" {
			return v
		}
		return "none"
	}
	var blocked string
	switch b := str("redeem_blocked"); b {
	case "":
	case "offline_too_long":
		blocked = fmt.Sprintf("REDEMPTION BLOCKED on this till (offline_too_long): the last feed is %s old, head office allows %s; it resumes after the next feed; ",
			secs("feed_age_s"), secs("max_age_s"))
	case "offline_first_load":
		blocked = "REDEMPTION BLOCKED on this till (offline_first_load): no feed has brought head office's offline rules yet (first load not finished)"
	case "offline_till_cap":
		blocked = "REDEMPTION BLOCKED on this till (offline_till_cap): the till cap is used up until head office folds this till's redemptions (next sync); "
	default:
		blocked = "REDEMPTION BLOCKED on this till (" + b + "); "
	}
	if rules, _ := o["rules"].(bool); !rules {
		if blocked != "" {
			return blocked
		}
		return "none (no feed has saved head office's rules: a standalone till)"
	}
	v := blocked + "card cap " + capText("card_cap") + ", till cap " + capText("till_cap")
	if left := str("till_cap_left"); left != "" {
		v += " (used " + str("till_cap_used") + ", left " + left + ")"
	}
	v += ", max age "
	if secs("max_age_s") > 0 {
		v += secs("max_age_s").String()
	} else {
		v += "none"
	}
	return v + ", last feed " + secs("feed_age_s").String() + " ago"
}

// listItem is one item of a status list: a refused entry ("id status:
// error") as it is, a rejected feed record as "section key: error".
func listItem(it any) string {
	m, ok := it.(map[string]any)
	if !ok {
		return plain(it)
	}
	return fmt.Sprintf("%v %v: %v", m["section"], m["key"], m["error"])
}

// plain is a status value as the technician reads it: a JSON number (a
// float64 once decoded into any) in digits, as fmt would not from a
// million on (1e+06).
func plain(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func cmdDemoScan(fs *flag.FlagSet) agentRun {
	return func(ctx context.Context, c *agentClient, args []string) error {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: tillctl demo scan CODE")
			return errUsage
		}
		_, err := c.call(ctx, "POST", "/v1/demo/scan", map[string]string{"code": args[0]}, nil)
		if err != nil {
			if errIs(err, "request.unknown_route") {
				return fmt.Errorf("%w\nhint: the demo scanner runs only with demo.virtual_scanner (make run)", err)
			}
			return err
		}
		fmt.Fprintln(c.out, "typed on the demo scanner; see `tillctl events`")
		return nil
	}
}

// cmdEvents follows GET /v1/events and prints one line per event of the
// listed types (default: all).
func cmdEvents(types string) func(*flag.FlagSet) agentRun {
	return func(fs *flag.FlagSet) agentRun {
		only := fs.String("type", types, "event types to show, comma-separated (scan, health, printer, sync); empty: all")
		return func(ctx context.Context, c *agentClient, _ []string) error {
			return followEvents(ctx, c, *only)
		}
	}
}

func followEvents(ctx context.Context, c *agentClient, only string) error {
	want := map[string]bool{}
	for _, t := range cardList(only) {
		want[t] = true
	}
	// The stream is followed across the agent's restarts and lost
	// connections: it is asked again after the last event seen
	// (Last-Event-ID), so the agent replays what came meanwhile, or says
	// with a gap event that some is gone. Only the first connection's
	// failure is an error.
	last, connected := "", false
	for {
		err := readEvents(ctx, c, want, &last, &connected)
		if ctx.Err() != nil {
			return nil
		}
		if !connected {
			return err
		}
		fmt.Fprintf(os.Stderr, "tillctl: event stream lost (%v); reconnecting\n", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// readEvents reads one connection of the stream, printing the events of
// the wanted types (all if none) and every gap; last follows the ids seen.
func readEvents(ctx context.Context, c *agentClient, want map[string]bool, last *string, connected *bool) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/events", nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	hc := *c.http
	hc.Timeout = 0 // a stream
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/events: %s", resp.Status)
	}
	*connected = true
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e struct {
			ID   string
			Type string
			At   string
			Data map[string]any
		}
		if json.Unmarshal([]byte(data), &e) != nil {
			continue
		}
		if e.ID != "" {
			*last = e.ID
		}
		if len(want) > 0 && !want[e.Type] && e.Type != "gap" {
			continue
		}
		if c.json {
			fmt.Fprintln(c.out, data)
			continue
		}
		if e.Type == "gap" {
			fmt.Fprintf(c.out, "%s gap    events missed (%v): the kept ones follow; check `tillctl status`\n", e.At, e.Data["reason"])
			continue
		}
		var parts []string
		for _, k := range sortedKeys(e.Data) {
			parts = append(parts, fmt.Sprintf("%s=%v", k, e.Data[k]))
		}
		fmt.Fprintf(c.out, "%s %-6s %s\n", e.At, e.Type, strings.Join(parts, " "))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// sizeText is a byte count as a technician reads it.
func sizeText(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

// keptStatus is the agent's journal.kept (store.JournalKept).
type keptStatus struct {
	HeldBefore    string `json:"held_before"`
	Pruned        int64  `json:"pruned_entries"`
	PrunedThrough string `json:"pruned_through"`
	Lost          bool
	FoldedThrough string `json:"folded_through"`
}

// String says which journal entries the till may drop, how many it has,
// and, first, whether head office lost some of those.
func (k keptStatus) String() string {
	v := "every entry (head office has not said which it holds)"
	if k.HeldBefore != "" {
		v = "entries before " + k.HeldBefore + " go past sale.keep_days (head office holds them)"
	}
	if k.Pruned > 0 {
		v += fmt.Sprintf("; %d dropped", k.Pruned)
	}
	if k.Lost {
		after := "the first"
		if k.FoldedThrough != "" {
			after = "after " + k.FoldedThrough
		}
		v = fmt.Sprintf("LOST: head office, restored from a backup older than its -journal-hold, lacks entries %s through %s, which this till dropped: give them back at head office with headoffice retake-journal, from ERP's journal export; %s", after, k.PrunedThrough, v)
	}
	return v
}

// docsText is the status's document counts: finished sales and returns,
// those pending a printer's answer, and how many of them were pruned past
// sale.keep_days (a return of those goes through head office).
func docsText(n map[string]int) string {
	v := fmt.Sprintf("sales %d, returns %d", n["sale_done"], n["return_done"])
	if p := n["sale_pending"] + n["return_pending"]; p > 0 {
		v += fmt.Sprintf(", pending %d", p)
	}
	if p := n["sale_pruned"] + n["return_pruned"]; p > 0 {
		v += fmt.Sprintf("; pruned past sale.keep_days: sales %d, returns %d", n["sale_pruned"], n["return_pruned"])
	}
	return v
}
