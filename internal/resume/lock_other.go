//go:build !unix

package resume

import "github.com/aiotorrent/aiotorrent/metainfo"

// Lock does nothing on systems without flock: a record may then be
// written by two torrents at once, the last one written winning.
func Lock(dir string, h metainfo.Hash) (unlock func(), err error) {
	return func() {}, nil
}

// LockFile does nothing on systems without flock.
func LockFile(dir, name string) (unlock func(), err error) {
	return func() {}, nil
}
