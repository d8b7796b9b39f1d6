package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"tillagent/checkout"
)

// catalog is the slowly changing part of the replica, loaded whole on first
// use after an import: programs with their promotions, card kinds, stores,
// and the group tree. A quote then reads only the card and the products.
type catalog struct {
	programs map[string]checkout.Program
	kinds    map[string]cardKind
	stores   map[string]*time.Location
	groups   map[string]group
	// products with their group chain and segment resolved: a quote of 50
	// lines then costs no query for the catalog at all.
	products map[string]product
}

type product struct {
	name, segment, vat, unit string
	groups                   []string
	tobacco                  bool
	lpp                      *checkout.Money
}

type cardKind struct {
	kind    checkout.CardKind
	program string
}

type group struct {
	parent, segment string
}

func (s *Store) invalidateCatalog() {
	s.mu.Lock()
	s.cat = nil
	s.mu.Unlock()
}

func (s *Store) catalog(ctx context.Context) (*catalog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cat != nil {
		return s.cat, nil
	}
	c, err := s.loadCatalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: load catalog: %w", s.path, err)
	}
	s.cat = c
	return c, nil
}

func (s *Store) loadCatalog(ctx context.Context) (*catalog, error) {
	c := &catalog{
		programs: map[string]checkout.Program{},
		kinds:    map[string]cardKind{},
		stores:   map[string]*time.Location{},
		groups:   map[string]group{},
		products: map[string]product{},
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, body FROM programs`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return nil, err
		}
		var p checkout.Program
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("program %s: %w", id, err)
		}
		c.programs[id] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT id, program_id, body FROM promotions ORDER BY id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, prog, body string
		if err := rows.Scan(&id, &prog, &body); err != nil {
			rows.Close()
			return nil, err
		}
		var p checkout.Promotion
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("promotion %s: %w", id, err)
		}
		pg := c.programs[prog]
		pg.Promotions = append(pg.Promotions, p)
		c.programs[prog] = pg
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT id, kind, program_id FROM card_kinds`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var k cardKind
		if err := rows.Scan(&id, &k.kind, &k.program); err != nil {
			rows.Close()
			return nil, err
		}
		c.kinds[id] = k
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT id, timezone FROM stores`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, tz string
		if err := rows.Scan(&id, &tz); err != nil {
			rows.Close()
			return nil, err
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store %s: %w", id, err)
		}
		c.stores[id] = loc
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT id, coalesce(parent_id, ''), segment FROM product_groups`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var g group
		if err := rows.Scan(&id, &g.parent, &g.segment); err != nil {
			rows.Close()
			return nil, err
		}
		c.groups[id] = g
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT id, name, group_id, segment, vat, tobacco, last_purchase_price_kop, unit FROM products`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, grp string
		var p product
		var lpp sql.NullInt64
		if err := rows.Scan(&id, &p.name, &grp, &p.segment, &p.vat, &p.tobacco, &lpp, &p.unit); err != nil {
			return nil, err
		}
		chain, seg := c.groupChain(grp)
		p.groups = chain
		if p.segment == "" {
			p.segment = seg
		}
		if lpp.Valid {
			m := checkout.Kopecks(lpp.Int64)
			p.lpp = &m
		}
		c.products[id] = p
	}
	return c, rows.Err()
}

// groupChain returns the group and its ancestors, nearest first, and the
// nearest non-empty segment on the way up. Import refuses cycles; the depth
// cap guards against a hand-edited database.
func (c *catalog) groupChain(id string) (chain []string, segment string) {
	for d := 0; id != "" && d < 32; d++ {
		g, ok := c.groups[id]
		if !ok {
			break
		}
		chain = append(chain, id)
		if segment == "" {
			segment = g.segment
		}
		id = g.parent
	}
	return chain, segment
}

// Location returns the time zone of a store of the replica.
func (s *Store) Location(ctx context.Context, storeID string) (*time.Location, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	loc, ok := cat.stores[storeID]
	if !ok {
		return nil, fmt.Errorf("%w %q (not in the replica)", ErrUnknownStore, storeID)
	}
	return loc, nil
}
