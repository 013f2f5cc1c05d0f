//go:build linux

package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// Qbit is a qbittorrent-nox process driven through its Web API.
type Qbit struct {
	Proc *Proc
	Port int // its BitTorrent port on 127.0.0.1

	api    string // "http://127.0.0.1:PORT/api/v2/"
	client *http.Client
}

// qbitTorrent is a torrent as /api/v2/torrents/info reports it.
type qbitTorrent struct {
	Hash       string  `json:"hash"`
	State      string  `json:"state"`
	Progress   float64 `json:"progress"`
	AmountLeft int64   `json:"amount_left"`
	Uploaded   int64   `json:"uploaded"`
}

func (q qbitTorrent) checking() bool {
	return strings.HasPrefix(q.State, "checking") || q.State == "allocating" || q.State == "metaDL"
}
func (q qbitTorrent) complete() bool {
	return !q.checking() && q.Progress >= 1 && q.AmountLeft == 0
}
func (q qbitTorrent) failed() bool { return q.State == "error" || q.State == "missingFiles" }

// qbitPollEvery is how often the Web API is asked; qBittorrent refreshes
// what it reports every 100 ms (RefreshInterval in its configuration).
const qbitPollEvery = 50 * time.Millisecond

// StartQbit starts qbittorrent-nox, as the program called name, with a
// fresh profile in dir (settings: swarmtest.QbittorrentProfile) and
// returns once its Web API answers.
func (sw *Swarm) StartQbit(ctx context.Context, name, dir string) (*Qbit, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	webPort, err := FreePortExcept(port)
	if err != nil {
		return nil, err
	}
	args, env, err := swarmtest.QbittorrentProfile(dir, port, webPort)
	if err != nil {
		return nil, err
	}
	p, err := StartProc(name, filepath.Join(dir, "output.log"), dir, env, nil, append([]string{sw.QbitCmd}, args...)...)
	if err != nil {
		return nil, err
	}
	q := &Qbit{Proc: p, Port: port, api: fmt.Sprintf("http://127.0.0.1:%d/api/v2/", webPort), client: &http.Client{Timeout: 5 * time.Second}}
	for {
		var version string
		err := q.get(ctx, "app/version", nil, &version)
		if err == nil {
			return q, nil
		}
		if p.HasExited() {
			return nil, fmt.Errorf("%v before its Web API answered (%v)\n%s", p.ExitError(), err, p.Tail())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: Web API not answering: %w (%v)\n%s", name, ctx.Err(), err, p.Tail())
		case <-time.After(qbitPollEvery):
		}
	}
}

// Add adds the torrent at torrentPath, to be saved in (or seeded from)
// saveDir; the data there is checked.
func (q *Qbit) Add(ctx context.Context, torrentPath, saveDir string) error {
	torrent, err := os.ReadFile(torrentPath)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("torrents", filepath.Base(torrentPath))
	if err != nil {
		return err
	}
	fw.Write(torrent)
	for _, kv := range [][2]string{
		{"savepath", saveDir}, {"paused", "false"}, {"skip_checking", "false"},
		{"autoTMM", "false"}, {"contentLayout", "Original"},
	} {
		mw.WriteField(kv[0], kv[1])
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.api+"torrents/add", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := q.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: add %s: %w", q.Proc.Name, torrentPath, err)
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(reply)) != "Ok." {
		return fmt.Errorf("%s: add %s: %s: %q", q.Proc.Name, torrentPath, resp.Status, reply)
	}
	return nil
}

// WaitComplete polls the torrent with hex info hash h until qBittorrent
// has all of it, checked.
func (q *Qbit) WaitComplete(ctx context.Context, h string) error {
	var last qbitTorrent
	for {
		tor, ok, err := q.torrent(ctx, h)
		if err == nil && ok {
			last = tor
			if tor.complete() {
				return nil
			}
			if tor.failed() {
				return fmt.Errorf("%s: torrent state %q\n%s", q.Proc.Name, tor.State, q.Proc.Tail())
			}
		}
		if q.Proc.HasExited() {
			return fmt.Errorf("%v\n%s", q.Proc.ExitError(), q.Proc.Tail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last state %+v\n%s", q.Proc.Name, ctx.Err(), last, q.Proc.Tail())
		case <-time.After(qbitPollEvery):
		}
	}
}

// torrent returns what qBittorrent reports of the torrent with hex info
// hash h; ok is false if it does not list it (yet).
func (q *Qbit) torrent(ctx context.Context, h string) (tor qbitTorrent, ok bool, err error) {
	var list []qbitTorrent
	if err := q.get(ctx, "torrents/info", url.Values{"hashes": {h}}, &list); err != nil {
		return qbitTorrent{}, false, err
	}
	for _, tor := range list {
		if strings.EqualFold(tor.Hash, h) {
			return tor, true, nil
		}
	}
	return qbitTorrent{}, false, nil
}

func (q *Qbit) get(ctx context.Context, method string, query url.Values, v any) error {
	return swarmtest.QbittorrentGet(ctx, q.client, q.api, method, query, v)
}
