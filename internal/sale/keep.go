package sale

import (
	"context"
	"fmt"
	"time"

	"tillagent/internal/store"
)

// pruneEvery is how often Run prunes documents and journal entries past
// Options.KeepDocs; a day's sales are pruned within an hour of reaching
// the age.
const pruneEvery = time.Hour

// pruneChunk is how many sales one prune transaction empties: a few
// milliseconds of the store's writer, so a sale waiting for it (Prune
// holds the document lock per chunk) does not notice. journalChunk
// journal entries take about as long (BenchmarkPruneJournal).
const (
	pruneChunk   = 200
	journalChunk = 500
)

// Pruned counts what a Prune run dropped.
type Pruned struct {
	Docs    int // documents emptied (store.PruneDocs)
	Entries int // acknowledged journal entries deleted (store.PruneJournal)
}

// Prune empties the documents of sales older than Options.KeepDocs, with
// their returns (store.PruneDocs), then deletes the journal entries of
// that age head office lets the till drop (store.PruneJournal). With
// KeepDocs 0 it keeps everything. The age is the earlier of the till's
// clock and the printer's: a till clock set years ahead must not empty a
// month's sales, and the printer's clock, which dates the fiscal
// documents, is the other witness. A printer that cannot be asked just
// now postpones the pruning; nothing is urgent about it.
func (s *Service) Prune(ctx context.Context) (Pruned, error) {
	var p Pruned
	if s.o.KeepDocs <= 0 {
		return p, nil
	}
	now := s.o.Clock()
	at, err := s.printerNow(ctx)
	if err != nil {
		return p, fmt.Errorf("prune documents: read the printer's clock: %w", err)
	}
	if !at.IsZero() && at.Before(now) {
		now = at
	}
	before := now.Add(-s.o.KeepDocs)
	for {
		// Under the document lock: a return reads its sale and the sale's
		// earlier returns, which must not be emptied between the two.
		s.mu.Lock()
		n, err := s.st.PruneDocs(ctx, before, pruneChunk)
		s.mu.Unlock()
		p.Docs += n
		if err != nil {
			return p, err
		}
		if n == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return p, err
		}
	}
	// No lock: an entry goes only once no document of its check is kept,
	// and the entries a sale or return writes now are younger than before.
	for {
		n, err := s.st.PruneJournal(ctx, before, journalChunk)
		p.Entries += n
		if err != nil || n == 0 {
			return p, err
		}
		if err := ctx.Err(); err != nil {
			return p, err
		}
	}
}

// keepDocs prunes at start and every pruneEvery until ctx ends. Apart
// from Run's loop: a till upgraded with years of sales prunes for a
// minute at first, and settling must not wait for that.
func (s *Service) keepDocs(ctx context.Context) {
	if s.o.KeepDocs <= 0 {
		return
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		p, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("prune old documents: again in an hour", "err", err, "documents", p.Docs, "journal_entries", p.Entries)
		case p.Docs > 0 || p.Entries > 0:
			s.log.Info("pruned documents and journal entries older than the till keeps", "documents", p.Docs, "journal_entries", p.Entries, "keep_days", s.keepDays())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepDays is Options.KeepDocs in days, as sale.keep_days says it.
func (s *Service) keepDays() int { return int(s.o.KeepDocs / (24 * time.Hour)) }

// notKept refuses a return or a retried request whose sale is past the
// keeping age: the till no longer has its lines and points.
func (s *Service) notKept(d store.Doc) error {
	created := time.UnixMilli(d.CreatedMS).In(s.o.Clock().Location()).Format("02.01.2006")
	return &Error{Class: Gone, Code: "sale.not_kept",
		Cashier: fmt.Sprintf("Чек от %s старше срока хранения на кассе (%d дн.): возврат по нему оформляет офис", created, s.keepDays()),
		Hint:    "the till keeps a sale's lines and points sale.keep_days; head office holds its journal entries: correct the card's points there (an ERP correction)",
		Err:     fmt.Errorf("document %s (%s, FD %d) created %s was pruned at %s", d.ID, d.Kind, d.FD, time.UnixMilli(d.CreatedMS).UTC().Format(time.RFC3339), time.UnixMilli(d.PrunedMS).UTC().Format(time.RFC3339))}
}
