package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockStore takes an exclusive lock beside the store, before any device is
// opened: a second agent on the same till would otherwise settle, cancel
// or print on the first one's printer. The lock goes with the process, so
// a kill -9 never leaves it behind.
func lockStore(storePath string) (func(), error) {
	path := storePath + ".lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store %s is in use by another tillagent (lock %s): stop it first", storePath, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}
