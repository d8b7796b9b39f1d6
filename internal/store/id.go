package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Journal entry ids are "<till id>-<26 characters>": the 26 characters are a
// ULID-like value in Crockford base32, 48 bits of Unix milliseconds then 80
// bits that start random and count up within a millisecond. So ids of one
// till sort in the order they were made, and are unique forever:
//   - the till id is unique in the chain, so tills never collide;
//   - within a till the generator is strictly monotonic, and at Open it is
//     seeded with the largest id already in the journal, so a clock set back
//     (or a restart within the same millisecond) still yields larger ids;
//   - the journal's UNIQUE constraint turns any remaining surprise into a
//     refused write instead of a duplicate.
type idGen struct {
	mu     sync.Mutex
	prefix string
	ms     uint64
	hi     uint16 // top 16 of the 80 counter bits
	lo     uint64 // low 64
	now    func() time.Time
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func (s *Store) newIDGen(ctx context.Context) (*idGen, error) {
	g := &idGen{prefix: s.tillID + "-", now: s.now}
	var last sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT max(id) FROM journal WHERE id >= ? AND id < ?`,
		g.prefix, s.tillID+".").Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store %s: read last journal id: %w", s.path, err)
	}
	if last.Valid {
		if err := g.seed(strings.TrimPrefix(last.String, g.prefix)); err != nil {
			return nil, fmt.Errorf("store %s: last journal id %q: %w", s.path, last.String, err)
		}
	}
	return g, nil
}

// seed makes every later id larger than the 26-character value v.
func (g *idGen) seed(v string) error {
	ms, hi, lo, err := decodeULID(v)
	if err != nil {
		return err
	}
	g.ms, g.hi, g.lo = ms, hi, lo
	return nil
}

func (g *idGen) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := uint64(g.now().UnixMilli())
	if now > g.ms {
		var b [10]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand: " + err.Error()) // never fails on Linux
		}
		g.ms = now
		// Leave headroom so counting up within one millisecond cannot overflow.
		g.hi = binary.BigEndian.Uint16(b[:2]) & 0x7fff
		g.lo = binary.BigEndian.Uint64(b[2:])
	} else {
		g.lo++
		if g.lo == 0 {
			g.hi++
			if g.hi == 0 { // 2^80 ids in one millisecond: move to the next one
				g.ms++
			}
		}
	}
	return g.prefix + encodeULID(g.ms, g.hi, g.lo)
}

func encodeULID(ms uint64, hi uint16, lo uint64) string {
	// 128 bits: ms(48) | hi(16) | lo(64), written as 26 base32 digits (130 bits,
	// the top 2 always zero).
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], ms<<16|uint64(hi))
	binary.BigEndian.PutUint64(b[8:16], lo)
	var out [26]byte
	// Take 5 bits at a time from the least significant end.
	h := binary.BigEndian.Uint64(b[0:8])
	l := binary.BigEndian.Uint64(b[8:16])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[l&31]
		l = l>>5 | h<<59
		h >>= 5
	}
	return string(out[:])
}

func decodeULID(s string) (ms uint64, hi uint16, lo uint64, err error) {
	if len(s) != 26 {
		return 0, 0, 0, fmt.Errorf("id part %q: want 26 characters", s)
	}
	var h, l uint64
	for i := 0; i < 26; i++ {
		d := strings.IndexByte(crockford, s[i])
		if d < 0 {
			return 0, 0, 0, fmt.Errorf("id part %q: bad character %q", s, s[i])
		}
		if i == 0 && d > 7 {
			return 0, 0, 0, fmt.Errorf("id part %q: overflows 128 bits", s)
		}
		h = h<<5 | l>>59
		l = l<<5 | uint64(d)
	}
	return h >> 16, uint16(h), l, nil
}
