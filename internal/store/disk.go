package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Disk is what the till's database takes on its disk and what is left:
// the till keeps its history (docs/api.md, "What a till keeps"), so a
// technician and head office's monitoring watch both.
type Disk struct {
	// DBBytes are the database's files: the main file, its WAL and the
	// shared-memory index.
	DBBytes int64
	// FreeBytes is the space left to an unprivileged writer on the file
	// system holding the database.
	FreeBytes int64
}

// Disk measures the database's files and the space left beside them.
func (s *Store) Disk() (Disk, error) {
	var d Disk
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(s.path + suffix)
		if errors.Is(err, fs.ErrNotExist) && suffix != "" {
			continue // no WAL between checkpoints and closes
		}
		if err != nil {
			return d, fmt.Errorf("measure the till database %s: %w", s.path, err)
		}
		d.DBBytes += fi.Size()
	}
	free, err := freeBytes(filepath.Dir(s.path))
	if err != nil {
		return d, fmt.Errorf("free space beside the till database %s: %w", s.path, err)
	}
	d.FreeBytes = free
	return d, nil
}
