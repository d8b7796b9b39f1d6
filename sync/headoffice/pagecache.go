package headoffice

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
)

// pageCache keeps the cards and lots of first-load pages of "all"-scope
// stores, shared by the tills that load the same pages: a rollout, or
// every till reset after a restore, has hundreds of tills read every card
// of the chain page by page within minutes, and reading a page is most of
// head office's work for it (BenchmarkHerdFirstLoad).
//
// A till is given a cached page only as its own snapshot would read it
// (SnapshotPage, cachedCardPage): the page is looked up before the till's
// transaction begins, so its snapshot was taken before the till's, and
// the page's cards that any transaction with an xid at or above the
// cached snapshot's xmin has changed (a change row) are read again in the
// till's snapshot. Every transaction the cached snapshot sees, the till's
// then sees too; a card with no change from its xmin on was written only
// by transactions both see, so it reads the same in both. That holds
// while every write to a card or its lots writes a change row, which the
// delta feed already needs.
//
// A page is kept from the second time it is read within maxAge, or when
// another till asked for it while it was read (and waited for it, as
// tills asking a page being read do): one till's first load alone (every
// page read once) holds no memory. The cache lives with the process: a
// database restored from another cluster renumbers xids at start, in a
// new process.
type pageCache struct {
	maxBytes int64
	maxAge   time.Duration

	mu    sync.Mutex
	pages map[pageKey]*cachedPage
	lru   list.List // of *cachedPage, used last at the front
	bytes int64
	// asked is when each page not kept was last read, for at most
	// maxAsked pages (then the older than maxAge are forgotten, or all).
	asked map[pageKey]time.Time
	// reading are the pages being read for a till, for others to wait for.
	reading map[pageKey]*pageRead

	hits, misses, refreshed, packs atomic.Int64
}

// pageKey is a page as tills ask it: the card it starts after and how
// many cards it holds.
type pageKey struct {
	after string
	limit int
}

// cachedPage is one page of every card, read in one snapshot.
type cachedPage struct {
	key   pageKey
	xmin  uint64 // the snapshot's xmin
	read  time.Time
	cards []store.ReplicaCard
	lots  []store.ReplicaLot
	// last is the page's last card code when it was full: the page is
	// the codes after key.after up to it ("": the last page, every code
	// after key.after).
	last string
	size int64
	elem *list.Element
	// packed: the page encoded and compressed, made for the first till
	// given the page whole.
	packed packedPage
}

// packedPage is a page's cards and lots encoded (store.AppendCardsJSON,
// AppendLotsJSON), each compressed as a gzip member of its own (nil for
// none). Encoding a page and compressing it was most of head office's work
// for a cached page: a till given the page whole is sent these between
// members of its own (replyPage).
type packedPage struct {
	once        sync.Once
	cards, lots []byte
	err         error
}

// newPageCache: maxBytes 0 means 256 MB, negative no cache; maxAge 0
// means 30 s. The age bounds the cards a cached page must read again (the
// changes since its snapshot) as well as its memory.
func newPageCache(maxBytes int64, maxAge time.Duration) *pageCache {
	if maxBytes < 0 {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = 256 << 20
	}
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	return &pageCache{maxBytes: maxBytes, maxAge: maxAge, pages: map[pageKey]*cachedPage{}, asked: map[pageKey]time.Time{},
		reading: map[pageKey]*pageRead{}}
}

// pageRead is a page being read for a till: done closes when the read
// ended (kept or not); wanted says another till waited for it.
type pageRead struct {
	done   chan struct{}
	wanted bool
}

// lookup is the page cached for key, if any and young enough. Looked up
// before a till's snapshot is taken, so the page was read in an earlier
// one. With none cached and the page being read for another till, it
// waits for that read (ctx allowing) and looks again; with none cached
// and none being read, the caller reads it: lookup returns read, to pass
// to put and then to done.
func (c *pageCache) lookup(ctx context.Context, key pageKey) (p *cachedPage, read *pageRead) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	if p = c.get(key); p != nil {
		c.mu.Unlock()
		return p, nil
	}
	if r := c.reading[key]; r != nil {
		r.wanted = true
		c.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.get(key), nil // read here if that read was not kept
	}
	read = &pageRead{done: make(chan struct{})}
	c.reading[key] = read
	c.mu.Unlock()
	return nil, read
}

// done ends a read lookup started (nil: none).
func (c *pageCache) done(key pageKey, read *pageRead) {
	if read == nil {
		return
	}
	c.mu.Lock()
	delete(c.reading, key)
	c.mu.Unlock()
	close(read.done)
}

// get is the page cached for key, if young enough (c.mu held).
func (c *pageCache) get(key pageKey) *cachedPage {
	p := c.pages[key]
	if p != nil && time.Since(p.read) > c.maxAge {
		c.drop(p)
		return nil
	}
	if p != nil {
		c.lru.MoveToFront(p.elem)
	}
	return p
}

// usable reports (and counts) whether a till whose snapshot has xmin, and
// the feed's horizon, may be given p: not if p saw transactions the till's
// snapshot may not (a restored database's xids), nor if the change log no
// longer holds every change since p was read.
func (c *pageCache) usable(p *cachedPage, xmin, horizon uint64) bool {
	if c == nil {
		return false
	}
	ok := p != nil && p.xmin <= xmin && p.xmin >= horizon
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return ok
}

// put caches a page read in a snapshot with xmin (for lookup's read, or
// nil), if it was read before within maxAge or a till waited for it,
// keeping the later read of a page, and evicts the pages used longest ago
// beyond maxBytes.
func (c *pageCache) put(key pageKey, read *pageRead, xmin uint64, cards []store.ReplicaCard, lots []store.ReplicaLot, last string) {
	if c == nil {
		return
	}
	p := &cachedPage{key: key, xmin: xmin, read: time.Now(), cards: cards, lots: lots, last: last, size: pageBytes(cards, lots)}
	if p.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.pages[key]; old != nil {
		if old.xmin > xmin {
			return
		}
		c.drop(old)
	} else if at, ok := c.asked[key]; (!ok || time.Since(at) > c.maxAge) && (read == nil || !read.wanted) {
		c.remember(key, p.read)
		return
	}
	delete(c.asked, key)
	p.elem = c.lru.PushFront(p)
	c.pages[key] = p
	c.bytes += p.size
	for c.bytes > c.maxBytes {
		c.drop(c.lru.Back().Value.(*cachedPage))
	}
}

// maxAsked bounds pageCache.asked: 20,000 pages are 100M cards of 5,000.
const maxAsked = 20000

func (c *pageCache) remember(key pageKey, at time.Time) {
	if len(c.asked) >= maxAsked {
		for k, t := range c.asked {
			if time.Since(t) > c.maxAge {
				delete(c.asked, k)
			}
		}
		if len(c.asked) >= maxAsked {
			clear(c.asked)
		}
	}
	c.asked[key] = at
}

func (c *pageCache) drop(p *cachedPage) {
	c.lru.Remove(p.elem)
	delete(c.pages, p.key)
	c.bytes -= p.size
}

// pack is p packed, made at the first call. The members count in the
// cache's bytes while p is cached.
func (c *pageCache) pack(p *cachedPage) (*packedPage, error) {
	pk := &p.packed
	pk.once.Do(func() {
		buf := replyBuffers.Get().(*[]byte)
		raw := store.AppendCardsJSON((*buf)[:0], p.cards)
		defer func() { putReplyBuffer(buf, raw) }()
		if pk.cards, pk.err = gzipMember(raw); pk.err != nil {
			return
		}
		if raw, pk.err = store.AppendLotsJSON(raw[:0], p.lots); pk.err != nil {
			return
		}
		if pk.lots, pk.err = gzipMember(raw); pk.err != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pages[p.key] == p {
			n := int64(len(pk.cards) + len(pk.lots))
			p.size += n
			c.bytes += n
			for c.bytes > c.maxBytes {
				c.drop(c.lru.Back().Value.(*cachedPage))
			}
		}
	})
	return pk, pk.err
}

func (c *pageCache) heldBytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// pageBytes is about the memory a page's cards and lots hold: the structs,
// their strings, and the digits of their decimals (a card's debt and
// history, a lot's points and remaining) and the lot's times behind
// pointers, at about 48 bytes each.
func pageBytes(cards []store.ReplicaCard, lots []store.ReplicaLot) int64 {
	n := int64(len(cards))*int64(unsafe.Sizeof(store.ReplicaCard{})) + int64(len(lots))*int64(unsafe.Sizeof(store.ReplicaLot{}))
	for i := range cards {
		c := &cards[i]
		n += int64(len(c.Code)+len(c.Kind)+len(c.Program)+len(c.State)+len(c.BlockReason)+len(c.Holder)+len(c.History.Month)) + 6*48
	}
	for i := range lots {
		l := &lots[i]
		n += int64(len(l.ID)+len(l.Card)+len(l.CheckID)) + 4*48
	}
	return n
}

// cachedCardPage adds page p to r as the till's snapshot tx (with xmin)
// reads it: the cards of p's range with a change from p's snapshot's xmin
// on, and the cards of extra (the till's folded cards) outside the range,
// are read in tx; the rest are p's, shared (read only). A page with cards
// read again is cached as this snapshot read it, so the next till reads
// again only what changed since. whole says r's cards and lots start with
// all of p's, as p holds them (none read again).
func (s *Server) cachedCardPage(ctx context.Context, tx pgx.Tx, r *store.Replica, p *cachedPage, xmin uint64, extra []string) (whole bool, _ error) {
	// The change log is read by its xid index, however many changes it
	// holds before p's xmin (as the delta's are).
	if _, err := tx.Exec(ctx, `set local enable_seqscan = off`); err != nil {
		return false, fmt.Errorf("read the changes since a cached page: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT key FROM changes WHERE xid >= $1::text::xid8 AND section = 'cards'
		AND key > $2 AND ($3 = '' OR key <= $3)`, strconv.FormatUint(p.xmin, 10), p.key.after, p.last)
	if err != nil {
		return false, fmt.Errorf("read the changes since a cached page: %w", err)
	}
	fresh, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("read the changes since a cached page: %w", err)
	}
	whole = len(fresh) == 0 && len(r.Cards) == 0 && len(r.Lots) == 0
	if len(fresh) == 0 {
		r.Cards, r.Lots = appendShared(r.Cards, p.cards), appendShared(r.Lots, p.lots)
	} else {
		s.pages.refreshed.Add(int64(len(fresh)))
		stale := make(map[string]bool, len(fresh))
		for _, c := range fresh {
			stale[c] = true
		}
		c0, l0 := len(r.Cards), len(r.Lots)
		for i := range p.cards {
			if !stale[p.cards[i].Code] {
				r.Cards = append(r.Cards, p.cards[i])
			}
		}
		for i := range p.lots {
			if !stale[p.lots[i].Card] {
				r.Lots = append(r.Lots, p.lots[i])
			}
		}
		if err := s.feedCardCodes(ctx, tx, r, fresh); err != nil {
			return false, err
		}
		s.pages.put(p.key, nil, xmin, slices.Clip(r.Cards[c0:]), slices.Clip(r.Lots[l0:]), p.last)
	}
	// The till's folded cards in p's range read the same as p's unless
	// changed since.
	var outside []string
	for _, c := range extra {
		if c <= p.key.after || p.last != "" && c > p.last {
			outside = append(outside, c)
		}
	}
	return whole, s.feedCardCodes(ctx, tx, r, outside)
}

// appendShared appends src (whose cap is its len) to dst, src itself when
// dst is empty: a page's cards and lots are not copied for each till.
func appendShared[T any](dst, src []T) []T {
	if len(dst) == 0 {
		return src
	}
	return append(dst, src...)
}
