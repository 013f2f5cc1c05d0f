//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

func TestFileWrites(t *testing.T) {
	trace := `100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
100 openat(AT_FDCWD, "/dev/null", O_RDWR|O_CLOEXEC) = 4
100 openat(AT_FDCWD, "/tmp/x/piece-1", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = 5
101 openat(AT_FDCWD, "state.json", O_RDWR <unfinished ...>
101 <... openat resumed>) = 6
102 mkdirat(AT_FDCWD, "/root/.cache/aiotorrent", 0755) = -1 EEXIST (File exists)
102 unlinkat(AT_FDCWD, "/tmp/x/piece-1", 0) = 0
103 --- SIGURG {si_signo=SIGURG} ---
104 ???( <unfinished ...>
103 +++ exited with 0 +++
`
	got := fileWrites(trace)
	want := []string{"/tmp/x/piece-1", "state.json", "/root/.cache/aiotorrent", "/tmp/x/piece-1"}
	if len(got) != len(want) {
		t.Fatalf("fileWrites: %d lines, want %d: %q", len(got), len(want), got)
	}
	for i, w := range want {
		if !strings.Contains(got[i], `"`+w+`"`) {
			t.Errorf("line %d = %q, want one about %s", i, got[i], w)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 3}, {95, 5}, {0, 1}, {20, 1}, {21, 2}} {
		if got := percentile(ds, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestFirstDiff(t *testing.T) {
	a := make([]byte, 3<<20)
	b := make([]byte, 3<<20)
	if got := firstDiff(a, b); got != -1 {
		t.Errorf("equal: %d", got)
	}
	b[2<<20+7] = 1
	if got := firstDiff(a, b); got != 2<<20+7 {
		t.Errorf("differing: %d", got)
	}
	if got := firstDiff(a[:10], b[:12]); got != 10 {
		t.Errorf("shorter: %d", got)
	}
}
