package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStreamCommand(t *testing.T) {
	torrentPath, src, addr := seedContent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var errb bytes.Buffer
	status := make(chan int, 1)
	go func() {
		status <- run(ctx, &env{stdout: outW, stderr: &errb}, []string{"stream", "--json", "--addr", "127.0.0.1:0",
			"--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr, "--cache", "1M", "--file", "2", torrentPath})
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		t.Fatalf("no output; stderr %q", errb.String())
	}
	var ev streamEvent
	if err := json.Unmarshal(lines.Bytes(), &ev); err != nil || ev.Event != "serving" {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	if !strings.HasPrefix(ev.URL, "http://127.0.0.1:") || ev.Path != "content/sub/b.bin" {
		t.Fatalf("serving %+v", ev)
	}
	want, err := os.ReadFile(filepath.Join(src, "content/sub/b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ev.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("GET %s: %d bytes, %v; want the %d bytes of the file", ev.URL, len(got), err, len(want))
	}
	// A status line comes every second; then Ctrl-C.
	if !lines.Scan() {
		t.Fatal("no status line")
	}
	var st streamStatusEvent
	if err := json.Unmarshal(lines.Bytes(), &st); err != nil || st.Event != "status" || st.CacheSize != 1<<20 || st.Verified < int64(len(want)) {
		t.Fatalf("status line %q: %v", lines.Text(), err)
	}
	cancel()
	var last string
	for lines.Scan() {
		last = lines.Text()
	}
	select {
	case s := <-status:
		if s != 0 {
			t.Fatalf("status %d, stderr %q", s, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not stop")
	}
	if !strings.Contains(last, `"event":"stopped"`) {
		t.Fatalf("last line %q", last)
	}
}

func TestStreamCommandErrors(t *testing.T) {
	torrentPath, _, _ := seedContent(t)
	for _, tt := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"stream"}, 2, "wants one torrent"},
		{[]string{"stream", "--cache", "lots", torrentPath}, 2, "--cache"},
		{[]string{"stream", "--file", "99", torrentPath}, 2, "no such file"},
		{[]string{"stream", "--addr", "127.0.0.1:99999", "--listen", "127.0.0.1:0", torrentPath}, 1, "listen"},
	} {
		r := runCLI(t, tt.args...)
		checkClean(t, r)
		if r.status != tt.status || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tt.args, r.status, r.stderr, tt.status, tt.want)
		}
	}
}
