package headoffice

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the copy's scratch database
)

// JournalCopy is ERP's copy of the journal export, staged for
// RetakeJournal in a scratch SQLite file rather than in memory: a restore
// past -journal-hold (90 days by default) can need months of every till's
// entries back, far more than a head-office host holds in memory (about
// 0.5 KB an entry). Each entry is kept once, by id, as compact JSON; the
// same id given again with other bytes is refused when it is added.
// Adding is not safe for concurrent use; once filled, the copy can be
// retaken any number of times. Close removes the file.
type JournalCopy struct {
	db  *sql.DB
	dir string
	tx  *sql.Tx
	// insert and same are prepared on db; ins and sameTx are them in tx.
	insert, same *sql.Stmt
	ins, sameTx  *sql.Stmt
	// pending counts the rows of tx; given the entries added, kept those
	// stored (the others were given again).
	pending, given, kept int
	buf                  bytes.Buffer
	// err is the first failure to add: the copy is then not the export,
	// and RetakeJournal refuses it.
	err error
}

// copyCommitEvery bounds the rows of one transaction on the scratch file.
const copyCommitEvery = 50_000

// NewJournalCopy creates an empty copy in a new directory under dir (""
// is os.TempDir: set TMPDIR to a disk with room for the export).
func NewJournalCopy(dir string) (*JournalCopy, error) {
	d, err := os.MkdirTemp(dir, "tillagent-retake-*")
	if err != nil {
		return nil, fmt.Errorf("journal copy: %w", err)
	}
	// A scratch file: no journal and no fsync, since a crash leaves
	// nothing to recover (the run is started again from the export).
	q := url.Values{}
	q.Add("_pragma", "journal_mode(OFF)")
	q.Add("_pragma", "synchronous(OFF)")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(d, "copy.db")}).EscapedPath()+"?"+q.Encode())
	if err == nil {
		_, err = db.Exec(`CREATE TABLE entries (id TEXT PRIMARY KEY, till_id TEXT NOT NULL, body BLOB NOT NULL);
			CREATE INDEX entries_till ON entries (till_id, id)`)
	}
	c := &JournalCopy{db: db, dir: d}
	if err == nil {
		c.insert, err = db.Prepare(`INSERT INTO entries (id, till_id, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	}
	if err == nil {
		c.same, err = db.Prepare(`SELECT till_id, body FROM entries WHERE id = ?`)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("journal copy in %s: %w", d, err)
	}
	db.SetMaxOpenConns(retakeWorkers + 1)
	return c, nil
}

// Close removes the copy.
func (c *JournalCopy) Close() error {
	var errs []error
	if c.tx != nil {
		errs = append(errs, c.tx.Rollback())
		c.tx = nil
	}
	if c.db != nil {
		errs = append(errs, c.db.Close())
	}
	errs = append(errs, os.RemoveAll(c.dir))
	return errors.Join(errs...)
}

// Entries is how many entries the copy holds (each once).
func (c *JournalCopy) Entries() int { return c.kept }

// Add adds one exported entry. An entry without an id or a till, or an id
// given before with another till or other bytes, is an error, and so is
// every later call and RetakeJournal: the copy is not head office's
// export.
func (c *JournalCopy) Add(x ExportedEntry) error {
	if c.err != nil {
		return c.err
	}
	c.err = c.add(x)
	return c.err
}

func (c *JournalCopy) add(x ExportedEntry) error {
	c.given++
	id, err := entryID(x.Entry)
	if err != nil || id == "" {
		return fmt.Errorf("journal copy: exported entry %d of till %q: no entry id (%v)", c.given, x.TillID, err)
	}
	if x.TillID == "" {
		return fmt.Errorf("journal copy: exported entry %s: no till_id", id)
	}
	// Without insignificant space, so that the same entry saved by two
	// exports (or pretty-printed by ERP) compares equal.
	c.buf.Reset()
	if err := json.Compact(&c.buf, x.Entry); err != nil {
		return fmt.Errorf("journal copy: exported entry %s: %w", id, err)
	}
	body := c.buf.Bytes()
	if c.tx == nil {
		tx, err := c.db.Begin()
		if err != nil {
			return fmt.Errorf("journal copy: %w", err)
		}
		c.tx, c.pending = tx, 0
		c.ins, c.sameTx = tx.Stmt(c.insert), tx.Stmt(c.same)
	}
	res, err := c.ins.Exec(id, x.TillID, body)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("journal copy: entry %s: %w", id, err)
	}
	if n == 0 { // given before: an export taken twice, or overlapping pages
		var till string
		var prev []byte
		if err := c.sameTx.QueryRow(id).Scan(&till, &prev); err != nil {
			return fmt.Errorf("journal copy: entry %s: %w", id, err)
		}
		if till != x.TillID || !bytes.Equal(prev, body) && !(till == ERPTill && sameCorrection(prev, body)) {
			return fmt.Errorf("journal copy: entry %s given twice with different content: the copy is not head office's export", id)
		}
		return nil // the first copy is kept
	}
	c.kept++
	if c.pending++; c.pending >= copyCommitEvery {
		return c.commit()
	}
	return nil
}

// entryID is the id of an entry's JSON. Head office's export writes it
// first, plain (wire.AppendEntry; an id holds no character JSON escapes),
// read here without decoding the entry: a fifth of the time to fill a
// copy. Anything else is decoded.
func entryID(body []byte) (string, error) {
	if rest, ok := bytes.CutPrefix(body, []byte(`{"id":"`)); ok {
		if i := bytes.IndexAny(rest, `"\`); i >= 0 && rest[i] == '"' {
			return string(rest[:i]), nil
		}
	}
	var head struct {
		ID string `json:"id"`
	}
	err := json.Unmarshal(body, &head)
	return head.ID, err
}

// commit ends the transaction Add writes in.
func (c *JournalCopy) commit() error {
	if c.tx == nil {
		return nil
	}
	err := c.tx.Commit()
	c.tx = nil
	if err != nil {
		return fmt.Errorf("journal copy: %w", err)
	}
	return nil
}

// ReadExport adds the entries of r, ERP's copy of the journal export: the
// export's pages (GET /v1/erp/journal answers) one after another, or its
// entries one a line (each `{"till_id": …, "entry": …}`), or both mixed,
// read as they stream (a page is not held whole). Anything else is an
// error naming the value.
func (c *JournalCopy) ReadExport(r io.Reader) error {
	if c.err != nil {
		return c.err
	}
	dec := json.NewDecoder(r)
	for n := 1; ; n++ {
		more, err := c.readValue(dec)
		if err != nil {
			c.err = fmt.Errorf("journal export, value %d: %w", n, err)
			return c.err
		}
		if !more {
			return nil
		}
	}
}

var errNotExport = errors.New(`neither a page ({"entries": […]}) nor an exported entry ({"till_id", "entry"})`)

// readValue adds the entries of the next value of dec, false at the end of
// its input.
func (c *JournalCopy) readValue(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if tok != json.Delim('{') {
		return false, errNotExport
	}
	var line ExportedEntry
	page, fields := false, false
	for dec.More() {
		if tok, err = dec.Token(); err != nil {
			return false, unexpectedEOF(err)
		}
		switch tok {
		case "entries":
			if page, err = c.readPage(dec); err != nil {
				return false, err
			}
		case "till_id", "entry":
			fields = true
			p := any(&line.TillID)
			if tok == "entry" {
				p = &line.Entry
			}
			if err := dec.Decode(p); err != nil {
				return false, unexpectedEOF(err)
			}
		default: // cursor, more, reset of a page; folded, received_at of an entry
			if err := dec.Decode(new(json.RawMessage)); err != nil {
				return false, unexpectedEOF(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return false, unexpectedEOF(err)
	}
	switch {
	case page && !fields:
		return true, nil
	case !page && line.TillID != "" && line.Entry != nil:
		return true, c.add(line)
	}
	return false, errNotExport
}

// readPage adds the entries of a page's "entries" array, false if it is
// null.
func (c *JournalCopy) readPage(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, unexpectedEOF(err)
	}
	if tok == nil {
		return false, nil
	}
	if tok != json.Delim('[') {
		return false, errNotExport
	}
	for dec.More() {
		var x ExportedEntry
		if err := dec.Decode(&x); err != nil {
			return false, unexpectedEOF(err)
		}
		if err := c.add(x); err != nil {
			return false, err
		}
	}
	_, err = dec.Token()
	return true, unexpectedEOF(err)
}

// unexpectedEOF is err, io.ErrUnexpectedEOF for an input that ends inside
// a value (the decoder's Token says io.EOF).
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// tills lists the tills the copy holds entries of.
func (c *JournalCopy) tills(ctx context.Context) ([]string, error) {
	if c.err != nil {
		return nil, c.err
	}
	if err := c.commit(); err != nil {
		return nil, err
	}
	return c.column(ctx, `SELECT DISTINCT till_id FROM entries ORDER BY till_id`)
}

// ids reads at most n ids of till after one id up to and including
// another, in id order.
func (c *JournalCopy) ids(ctx context.Context, till, after, through string, n int) ([]string, error) {
	ids, err := c.column(ctx, `SELECT id FROM entries WHERE till_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?`, till, after, through, n)
	if err != nil {
		return nil, fmt.Errorf("till %s: %w", till, err)
	}
	return ids, nil
}

// column reads the strings a query of the copy gives.
func (c *JournalCopy) column(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("journal copy: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("journal copy: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal copy: %w", err)
	}
	return out, nil
}

// page reads at most n entries of till after id, in id order: byte order
// (SQLite's BINARY collation), the order of ids along a chain
// (CheckEntry: prev < id).
func (c *JournalCopy) page(ctx context.Context, till, after string, n int) ([]copiedEntry, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT id, body FROM entries WHERE till_id = ? AND id > ? ORDER BY id LIMIT ?`, till, after, n)
	if err != nil {
		return nil, fmt.Errorf("journal copy, till %s: %w", till, err)
	}
	defer rows.Close()
	out := make([]copiedEntry, 0, n)
	for rows.Next() {
		var id string
		var body []byte // Scan copies into a []byte, not into a RawMessage
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("journal copy, till %s: %w", till, err)
		}
		out = append(out, copiedEntry{id, body})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal copy, till %s: %w", till, err)
	}
	return out, nil
}
