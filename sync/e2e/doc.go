// Package e2e holds the end-to-end sync tests: head office on a real
// PostgreSQL server behind a real HTTP listener, tills with real SQLite
// stores, and a fault-injecting proxy between them. It has no code of its own.
package e2e
