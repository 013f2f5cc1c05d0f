//go:build linux

package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// LTStatus is a status line of libtorrent_client.py.
type LTStatus struct {
	State       string `json:"state"`
	TotalDone   int64  `json:"total_done"`
	TotalWanted int64  `json:"total_wanted"`
	Uploaded    int64  `json:"upload"`
	Port        int    `json:"port"`
	Error       string `json:"error"`
}

// Complete reports whether the status says the whole torrent is there.
func (s LTStatus) Complete() bool { return s.TotalWanted > 0 && s.TotalDone >= s.TotalWanted }

// LTPeer is a libtorrent_client.py process and its latest status.
type LTPeer struct {
	Proc *Proc

	mu      sync.Mutex
	status  LTStatus      // guarded by mu
	at      time.Time     // guarded by mu: when status came; zero until the first
	changed chan struct{} // guarded by mu: closed and replaced on each status
}

// StartLT starts libtorrent_client.py, as the program called name in
// folder dir, saving the torrent's data in (or, with seed, seeding it
// from) saveDir.
func (sw *Swarm) StartLT(name, dir, saveDir string, seed bool) (*LTPeer, error) {
	l := &LTPeer{changed: make(chan struct{})}
	args := []string{sw.PythonCmd, sw.LTScript, "--torrent", sw.Torrent, "--save-path", saveDir}
	if seed {
		args = append(args, "--seed")
	}
	p, err := StartProc(name, filepath.Join(dir, "output.log"), dir, []string{"PYTHONUNBUFFERED=1"}, func(line string) {
		var st LTStatus
		if json.Unmarshal([]byte(line), &st) != nil {
			return
		}
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.status, l.at = st, now
		close(l.changed)
		l.changed = make(chan struct{})
	}, args...)
	if err != nil {
		return nil, err
	}
	l.Proc = p
	return l, nil
}

// Status returns the latest status, zero if none came yet.
func (l *LTPeer) Status() LTStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// WaitFor waits for a status that satisfies cond and returns it and when
// it came.
func (l *LTPeer) WaitFor(ctx context.Context, cond func(LTStatus) bool) (LTStatus, time.Time, error) {
	for {
		l.mu.Lock()
		st, at, changed := l.status, l.at, l.changed
		l.mu.Unlock()
		if !at.IsZero() && cond(st) {
			return st, at, nil
		}
		if st.Error != "" {
			return LTStatus{}, time.Time{}, fmt.Errorf("%s: torrent error %q\n%s", l.Proc.Name, st.Error, l.Proc.Tail())
		}
		select {
		case <-changed:
		case <-l.Proc.Exited:
			return LTStatus{}, time.Time{}, fmt.Errorf("%v; last status %+v\n%s", l.Proc.ExitError(), st, l.Proc.Tail())
		case <-ctx.Done():
			return LTStatus{}, time.Time{}, fmt.Errorf("%s: %w; last status %+v\n%s", l.Proc.Name, ctx.Err(), st, l.Proc.Tail())
		}
	}
}
