package harness

import (
	"context"
	"net"
	"os"
	"path/filepath"

	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// Work is a harness's work folder, with aiotorrent built into it.
type Work struct {
	Dir   string // the folder
	Bin   string // cmd/aiotorrent, built from Root
	Root  string // the module's root folder
	GoCmd string // the go command that built it
	keep  bool
}

// Workspace makes a work folder in dir (the system's temporary folder
// when empty) named prefix-*, checks that it has room for need bytes of
// what, and builds cmd/aiotorrent into it. Call Cleanup when done.
func Workspace(ctx context.Context, dir, prefix string, need int64, what string, keep bool) (*Work, error) {
	w := &Work{keep: keep}
	var err error
	if w.GoCmd, err = FindGo(); err != nil {
		return nil, err
	}
	if w.Root, err = ModuleRoot(); err != nil {
		return nil, err
	}
	if w.Dir, err = os.MkdirTemp(dir, prefix+"-"); err != nil {
		return nil, err
	}
	if err := CheckFree(w.Dir, need, 0, what); err != nil {
		w.Cleanup()
		return nil, err
	}
	w.Bin = filepath.Join(w.Dir, "aiotorrent")
	if err := BuildAiotorrent(ctx, w.GoCmd, w.Root, w.Bin); err != nil {
		w.Cleanup()
		return nil, err
	}
	return w, nil
}

// Cleanup stops every program started (before their folders go:
// qbittorrent-nox writes into its profile) and removes the folder, unless
// it is to be kept.
func (w *Work) Cleanup() {
	StopAll()
	if w.keep {
		Progress("kept %s", w.Dir)
	} else {
		os.RemoveAll(w.Dir)
	}
}

// StartTracker runs a tracker (tracker/server, HTTP only: aria2c announces
// only over HTTP when its DHT is off) on 127.0.0.1 in this process, and
// returns its announce URL, the server, and a function that stops it.
func StartTracker(cfg server.Config) (announce string, srv *server.Server, stop func(), err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv = server.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, nil) }()
	return "http://" + ln.Addr().String() + "/announce", srv, func() { cancel(); <-served }, nil
}
