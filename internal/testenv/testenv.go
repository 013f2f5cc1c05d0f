// Package testenv holds what the test binaries of several packages share.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RunIsolated runs the tests of m with XDG_STATE_HOME set to a new
// temporary folder, removed afterwards, so that the resume records of
// every client the tests start (and of the commands they run) stay out of
// the user's own state folder; and with AIOTORRENT_DHT_BOOTSTRAP set to
// "none", so that the commands they run never join the public DHT. It
// returns m.Run's exit code, for TestMain to pass to os.Exit.
func RunIsolated(m *testing.M) int {
	dir, err := os.MkdirTemp("", "aiotorrent-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_STATE_HOME", dir)
	// The commands the tests run join the DHT through no public router.
	os.Setenv("AIOTORRENT_DHT_BOOTSTRAP", "none")
	return m.Run()
}
