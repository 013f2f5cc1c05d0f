package main

import (
	"os"
	"testing"

	"github.com/aiotorrent/aiotorrent/internal/testenv"
)

// TestMain keeps the resume records of the tests out of the user's own
// state folder.
func TestMain(m *testing.M) { os.Exit(testenv.RunIsolated(m)) }
