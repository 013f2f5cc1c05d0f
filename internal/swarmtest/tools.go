// Package swarmtest holds helpers for tests and benchmarks that run real
// BitTorrent software, ours and independent implementations, on loopback.
package swarmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// RequireEnv is the environment variable that turns a missing external
// tool from a skipped test into a failed one. scripts/test.sh sets it in CI,
// which installs every tool, so interop tests never skip there.
const RequireEnv = "AIOTORRENT_REQUIRE_INTEROP"

// ToolsRequired reports whether a missing external tool must fail a test
// rather than skip it: under CI, or with RequireEnv set.
func ToolsRequired() bool {
	return os.Getenv("CI") != "" || os.Getenv(RequireEnv) != ""
}

// WriteTorrent writes mi as a .torrent file in a new temporary folder
// and returns its path, for a real client to open.
func WriteTorrent(t testing.TB, mi *metainfo.MetaInfo) string {
	t.Helper()
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "test.torrent")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Tool returns the path of the external program name, which Debian ships
// in package pkg. When it is not installed the test is skipped with a
// message naming the package, or fails if RequireEnv is set.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s not found (Debian package %s) and %s is set: install it (scripts/test.sh does)", name, pkg, RequireEnv)
	}
	t.Skipf("%s not found: install Debian package %s (scripts/test.sh does) to run this interop test", name, pkg)
	return ""
}
