package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/internal/store"
)

// TestReplicaImportRefusedOnASyncingTill: a till whose config has sync on,
// or whose store holds a feed cursor from head office, refuses a local
// import, saying the replica belongs to head office and to use
// reset-feed there, and imports nothing; -force imports (and -h documents
// it). A till without sync imports as before (TestReplicaImportCommand).
func TestReplicaImportRefusedOnASyncingTill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "till.db")
	synced := filepath.Join(dir, "synced.yaml")
	os.WriteFile(synced, []byte("till:\n  till_id: S001-T03\nstore:\n  path: "+db+"\n"+
		"sync:\n  enabled: true\n  url: http://127.0.0.1:8440\n  secret: till-secret-for-tests-0123456789\n"), 0o644)
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("till:\n  till_id: S001-T03\nstore:\n  path: "+db+"\n"), 0o644)
	hasReplica := func() bool {
		t.Helper()
		s, err := store.Open(ctx, store.Options{Path: db, TillID: "S001-T03"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		has, err := s.HasReplica(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	refused := func(cfg, want string) {
		t.Helper()
		var out bytes.Buffer
		err := replicaImport(ctx, []string{"-config", cfg, demoReplica}, &out)
		if err == nil {
			t.Fatalf("import with %s: accepted (%q)", cfg, out.String())
		}
		for _, s := range []string{want, "belongs to head office", "headoffice reset-feed -till S001-T03", "-force"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("import with %s: %v\nwant it to say %q", cfg, err, s)
			}
		}
	}
	refused(synced, "sync.enabled is true in "+synced)
	if hasReplica() {
		t.Fatal("refused import wrote the replica")
	}

	// Sync turned off in the config, but the store has been fed by head
	// office: still refused.
	s, err := store.Open(ctx, store.Options{Path: db, TillID: "S001-T03"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSyncState(ctx, "feed_cursor", "42"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	refused(plain, "feed cursor")
	if hasReplica() {
		t.Fatal("refused import wrote the replica")
	}

	var out bytes.Buffer
	if err := replicaImport(ctx, []string{"-config", synced, "-force", demoReplica}, &out); err != nil {
		t.Fatalf("-force: %v", err)
	}
	if !strings.Contains(out.String(), "8 cards, 9 lots") || !hasReplica() {
		t.Fatalf("-force imported %q", out.String())
	}

	var cfgPath string
	var force bool
	fs := importFlags(&cfgPath, &force)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.Usage()
	if !strings.Contains(help.String(), "-force") || !strings.Contains(help.String(), "refused there unless -force") {
		t.Fatalf("-h does not document -force:\n%s", help.String())
	}
}
