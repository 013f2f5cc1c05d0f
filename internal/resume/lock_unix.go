//go:build unix

package resume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Lock takes the record of the torrent with info hash h in folder dir
// (created if need be) for the caller alone, until the returned function
// is called: a torrent running elsewhere (another process, or another
// client of this one) with the same state folder holds it, and Lock then
// fails with ErrLocked. The lock is an flock on <hash>.lock, which the
// system drops when the process dies.
func Lock(dir string, h metainfo.Hash) (unlock func(), err error) {
	return LockFile(dir, filepath.Base(LockPath(dir, h)))
}

// LockFile takes the lock file name of folder dir (created if need be)
// for the caller alone, as Lock does for a record: for other state kept
// there, such as the DHT's routing table.
func LockFile(dir, name string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("resume: %s: %w", p, ErrLocked)
		}
		return nil, fmt.Errorf("resume: lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil // closing the file drops the lock
}
