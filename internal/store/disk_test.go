package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskGrowsWithDocuments: Disk counts the database's files as they
// grow and the space left beside them, and names the database when it
// cannot measure it.
func TestDiskGrowsWithDocuments(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	before, err := s.Disk()
	if err != nil || before.DBBytes <= 0 || before.FreeBytes <= 0 {
		t.Fatalf("disk of a new store: %+v %v", before, err)
	}
	result, receipt, _ := docJSON(40)
	for i := range 300 {
		d := Doc{ID: fmt.Sprintf("C%d", i), Kind: DocSale, IdemKey: fmt.Sprintf("k%d", i), RequestSHA: "sha", Result: result, Receipt: receipt}
		if _, err := s.BeginDoc(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.Disk()
	if err != nil || after.DBBytes < before.DBBytes+300*500 {
		t.Fatalf("disk after 300 documents: %+v (before %+v) %v, want at least 150 KB more", after, before, err)
	}
	s.path = filepath.Join(t.TempDir(), "gone.db")
	if _, err := s.Disk(); err == nil || !strings.Contains(err.Error(), "gone.db") {
		t.Fatalf("disk of a missing database: %v, want an error naming it", err)
	}
}
