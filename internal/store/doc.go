// Package store is the till's SQLite database: the replica of head office's
// data (stores, products and groups, programs and promotions, card kinds,
// cards, point lots, QR signing keys) and the journal of what this till did
// to card balances.
//
// Durability first: the file runs in WAL mode with synchronous=FULL, every
// connection's pragmas are read back when it opens and a difference refuses
// the store (PragmaError); one writer connection takes immediate
// transactions; a sale's journal entries commit in one transaction; the
// journal is append-only (enforced by triggers) and its ids are unique
// forever. A card's balance is the replica's lots plus this till's journal
// entries after the replica's watermark (folded_through: the last entry head
// office has folded into those lots), whatever their ack state. Recording a
// sale or a return is idempotent per check id / return id.
//
// The store fills the loyalty engine's input (QuoteInput) and leaves the
// pricing to package checkout. docs/replica.md describes the replica file,
// the journal and the balance arithmetic.
package store
