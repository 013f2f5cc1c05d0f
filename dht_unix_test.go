//go:build unix

package aiotorrent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDHTStateNotAFile: a FIFO or a huge file where the DHT's state
// should be is set aside, quickly: the client starts with a new node id.
func TestDHTStateNotAFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(p string) error
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"huge", func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(1 << 30) // sparse
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			if err := tc.make(filepath.Join(state, dhtStateFile)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c := dhtClient(t, state)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("NewClient took %v", d)
			}
			if c.DHT().NumNodes() != 0 {
				t.Fatalf("%d nodes from a bad state file", c.DHT().NumNodes())
			}
		})
	}
}
