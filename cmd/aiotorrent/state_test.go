package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain keeps the resume records the commands write (in this process
// and in the processes the tests run) out of the user's own state folder.
func TestMain(m *testing.M) {
	os.Exit(runIsolated(m))
}

func runIsolated(m *testing.M) int {
	dir, err := os.MkdirTemp("", "aiotorrent-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_STATE_HOME", dir)
	return m.Run()
}
