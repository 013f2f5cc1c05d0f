//go:build linux

package harness

import (
	"os"
	"os/exec"
	"strings"
)

// VCSInfo describes the commit of the source tree at root and whether
// tracked Go files differ from it (" at commit abc123 with uncommitted
// changes to Go files"), or returns "" if git cannot tell. It only reads:
// GIT_OPTIONAL_LOCKS=0 keeps "git status" from refreshing the index.
func VCSInfo(root string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil || rev == "" {
		return ""
	}
	out := " at commit " + rev
	if changed, err := git("status", "--porcelain", "--untracked-files=no", "--", "*.go"); err == nil && changed != "" {
		out += " with uncommitted changes to Go files"
	}
	return out
}
