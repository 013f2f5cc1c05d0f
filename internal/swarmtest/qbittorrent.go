package swarmtest

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
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Qbit is a qbittorrent-nox process, made by [Qbittorrent], driven
// through its Web API (v2) on 127.0.0.1.
//
// Its methods that take no context fail the test on error and must be
// called from the test's goroutine.
type Qbit struct {
	t      testing.TB
	proc   *process
	port   int    // for peers over TCP; UDP trackers answer to it too
	api    string // "http://127.0.0.1:PORT/api/v2/"
	client *http.Client
}

// QbitTorrent is a torrent as qBittorrent's /api/v2/torrents/info
// reports it.
type QbitTorrent struct {
	Hash string `json:"hash"`
	Name string `json:"name"`
	// State is qBittorrent's state: "checkingDL", "checkingUP",
	// "downloading", "stalledDL", "uploading", "stalledUP", "error",
	// "missingFiles", ...
	State      string  `json:"state"`
	Progress   float64 `json:"progress"` // 0 to 1
	AmountLeft int64   `json:"amount_left"`
	Completed  int64   `json:"completed"`
	Downloaded int64   `json:"downloaded"`
	Uploaded   int64   `json:"uploaded"`
	NumSeeds   int     `json:"num_seeds"`  // seeds connected
	NumLeechs  int     `json:"num_leechs"` // leechers connected
	SavePath   string  `json:"save_path"`
	Tracker    string  `json:"tracker"` // the tracker that last answered
}

// Checking reports whether qBittorrent is still checking the data.
func (q QbitTorrent) Checking() bool {
	return strings.HasPrefix(q.State, "checking") || q.State == "allocating" || q.State == "metaDL"
}

// Complete reports whether all the data is present and checked.
func (q QbitTorrent) Complete() bool {
	return !q.Checking() && q.Progress >= 1 && q.AmountLeft == 0
}

// Failed reports whether the torrent is stopped by an error.
func (q QbitTorrent) Failed() bool { return q.State == "error" || q.State == "missingFiles" }

// qbittorrentConf is the qBittorrent.conf Qbittorrent writes. It keeps
// qBittorrent 4.5 on 127.0.0.1, with no peer source but trackers:
//   - DHT, local peer discovery and peer exchange off; UPnP / NAT-PMP
//     port forwarding off, for the session and for the Web UI;
//   - Interface=lo with InterfaceAddress=127.0.0.1: libtorrent listens
//     on 127.0.0.1 and binds its outgoing connections to lo;
//   - the Web UI on 127.0.0.1, with no login from localhost;
//   - ResolvePeerCountries off: it would download a GeoIP database;
//   - the legal notice accepted: on a first start 4.5 asks for it when
//     run from a terminal, and has no --confirm-legal-notice (without a
//     terminal it goes on), so a run never depends on how it was started;
//   - MultiConnectionsPerIp, as every peer here is 127.0.0.1;
//   - BTProtocol=TCP, no uTP: connecting out, qBittorrent tries uTP
//     first and, with a peer that has none (aria2c, most small clients),
//     waits 2.5 s for it to time out before trying TCP;
//   - Encryption=2, encryption (MSE) off, 0 would prefer it: peers speak
//     plain BitTorrent, as aiotorrent does (aria2c tries MSE first and
//     retries plain about a second later);
//   - queueing off, so that every torrent starts at once; announces to
//     every tracker of every tier;
//   - RefreshInterval=100 (ms): the Web API reports a torrent's state as
//     of qBittorrent's last refresh, every 1.5 s by default.
//
// The placeholders are the profile dir, the BitTorrent port and the Web
// UI port.
const qbittorrentConf = `[LegalNotice]
Accepted=true

[Network]
PortForwardingEnabled=false

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress=127.0.0.1
Session\Port=%[2]d
Session\UseRandomPort=false
Session\MultiConnectionsPerIp=true
Session\BTProtocol=TCP
Session\Encryption=2
Session\QueueingSystemEnabled=false
Session\AnnounceToAllTrackers=true
Session\AnnounceToAllTiers=true
Session\AddTorrentPaused=false
Session\DefaultSavePath=%[1]s/downloads
Session\TempPathEnabled=false
Session\RefreshInterval=100

[Preferences]
Connection\UPnP=false
Connection\ResolvePeerCountries=false
General\Locale=en
WebUI\Enabled=true
WebUI\Address=127.0.0.1
WebUI\Port=%[3]d
WebUI\UseUPnP=false
WebUI\LocalHostAuth=false

[Application]
FileLogger\Enabled=true
`

// Qbittorrent starts qbittorrent-nox with a fresh profile in a temporary
// folder and returns once its Web API answers. It listens for peers on a
// free TCP port of 127.0.0.1 (the same UDP port serves UDP trackers),
// with the settings of qbittorrentConf. It is stopped when the test ends.
//
// It needs qbittorrent-nox (Debian package qbittorrent-nox): without it
// the test is skipped, or fails if [RequireEnv] is set.
func Qbittorrent(t testing.TB) *Qbit {
	t.Helper()
	bin := Tool(t, "qbittorrent-nox", "qbittorrent-nox")
	profile := t.TempDir()
	port, webPort := freePort(t), freePort(t)
	for webPort == port {
		webPort = freePort(t)
	}
	args, env, err := QbittorrentProfile(profile, port, webPort)
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(profile, "qBittorrent", "data", "logs", "qbittorrent.log")
	q := &Qbit{
		t:      t,
		port:   port,
		api:    fmt.Sprintf("http://127.0.0.1:%d/api/v2/", webPort),
		client: &http.Client{Timeout: 5 * time.Second},
	}
	q.proc = startProcess(t, "qbittorrent-nox", processCommand{
		path:     bin,
		args:     args,
		dir:      profile,
		env:      env,
		logFiles: []string{logFile},
	})
	t.Cleanup(q.client.CloseIdleConnections)

	deadline := time.Now().Add(clientStartTimeout)
	for {
		var version string
		err := q.get(context.Background(), "app/version", nil, &version)
		if err == nil {
			break
		}
		if q.proc.hasExited() {
			t.Fatalf("%v before its Web API answered (%v)\n%s", q.proc.exitError(), err, q.proc.failureLogs())
		}
		if time.Now().After(deadline) {
			t.Fatalf("qbittorrent-nox: Web API not answering after %v: %v\n%s", clientStartTimeout, err, q.proc.failureLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return q
}

// Port returns the port qBittorrent listens on for peers, on 127.0.0.1.
func (q *Qbit) Port() int { return q.port }

// Logs returns the end of qBittorrent's output and log file.
func (q *Qbit) Logs() string { return q.proc.logs() }

// Stop stops qBittorrent (it sends its "stopped" announces) and waits for
// it to exit, killing it if it takes more than a few seconds. The test's
// cleanup does the same.
func (q *Qbit) Stop() { q.proc.stop() }

// AddTorrent adds the torrent at torrentPath, to be saved in saveDir (the
// folder that holds, or will hold, the torrent's file or folder), and
// returns its info hash. qBittorrent checks any data already in saveDir.
// With seed, AddTorrent waits until that check finds the data complete,
// and fails the test if it does not; otherwise it returns once the
// torrent is listed.
func (q *Qbit) AddTorrent(torrentPath, saveDir string, seed bool) metainfo.Hash {
	q.t.Helper()
	mi, err := metainfo.LoadFile(torrentPath)
	if err != nil {
		q.t.Fatal(err)
	}
	torrent, err := os.ReadFile(torrentPath)
	if err != nil {
		q.t.Fatal(err)
	}
	saveDir, err = filepath.Abs(saveDir)
	if err != nil {
		q.t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("torrents", filepath.Base(torrentPath))
	if err != nil {
		q.t.Fatal(err)
	}
	fw.Write(torrent)
	for k, v := range map[string]string{
		"savepath":      saveDir,
		"paused":        "false",
		"skip_checking": "false", // check a seeder's data rather than trust it
		"autoTMM":       "false",
		"contentLayout": "Original",
	} {
		mw.WriteField(k, v)
	}
	mw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), clientStartTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.api+"torrents/add", &body)
	if err != nil {
		q.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := q.client.Do(req)
	if err != nil {
		q.t.Fatalf("qbittorrent-nox: add %s: %v\n%s", torrentPath, err, q.proc.failureLogs())
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(reply)) != "Ok." {
		q.t.Fatalf("qbittorrent-nox: add %s: %s: %q\n%s", torrentPath, resp.Status, reply, q.proc.failureLogs())
	}

	h := mi.InfoHash
	ready := func(QbitTorrent) (bool, error) { return true, nil }
	if seed {
		ready = func(tor QbitTorrent) (bool, error) {
			if tor.Complete() {
				return true, nil
			}
			if !tor.Checking() {
				return false, fmt.Errorf("the data in %s is not complete: %d bytes missing", saveDir, tor.AmountLeft)
			}
			return false, nil
		}
	}
	if err := q.waitFor(ctx, h, ready); err != nil {
		what := "leecher"
		if seed {
			what = "seeder"
		}
		q.t.Fatalf("qbittorrent-nox: add %s as %s: %v", torrentPath, what, err)
	}
	return h
}

// Torrent returns what qBittorrent reports of the torrent h. ok is false
// if it has no such torrent.
func (q *Qbit) Torrent(ctx context.Context, h metainfo.Hash) (tor QbitTorrent, ok bool, err error) {
	var list []QbitTorrent
	if err := q.get(ctx, "torrents/info", url.Values{"hashes": {h.String()}}, &list); err != nil {
		return QbitTorrent{}, false, err
	}
	for _, tor := range list {
		if strings.EqualFold(tor.Hash, h.String()) {
			return tor, true, nil
		}
	}
	return QbitTorrent{}, false, nil
}

// Progress returns the fraction of the torrent h that qBittorrent has, 0
// to 1.
func (q *Qbit) Progress(ctx context.Context, h metainfo.Hash) (float64, error) {
	tor, ok, err := q.Torrent(ctx, h)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("qbittorrent-nox: no torrent %s", h)
	}
	return tor.Progress, nil
}

// qbitPollEvery is how often WaitFor asks the Web API, which has no way
// to push changes.
const qbitPollEvery = 50 * time.Millisecond

// WaitFor polls the torrent h until cond holds for it. It returns an
// error, with the torrent's trackers and qBittorrent's logs, if the
// torrent stops with an error, qBittorrent exits, or ctx is done first.
// qBittorrent refreshes what it reports every 100 ms.
func (q *Qbit) WaitFor(ctx context.Context, h metainfo.Hash, cond func(QbitTorrent) bool) error {
	return q.waitFor(ctx, h, func(tor QbitTorrent) (bool, error) { return cond(tor), nil })
}

// waitFor is WaitFor with a condition that may give up with an error.
func (q *Qbit) waitFor(ctx context.Context, h metainfo.Hash, cond func(QbitTorrent) (bool, error)) error {
	tick := time.NewTicker(qbitPollEvery)
	defer tick.Stop()
	var (
		last    QbitTorrent
		listed  bool
		lastErr error
	)
	for {
		tor, ok, err := q.Torrent(ctx, h)
		switch {
		case err != nil:
			lastErr = err
		case ok:
			last, listed, lastErr = tor, true, nil
			done, err := cond(tor)
			if done {
				return nil
			}
			if err == nil && tor.Failed() {
				err = fmt.Errorf("state %s", tor.State)
			}
			if err != nil {
				return fmt.Errorf("torrent %s: %w; %+v%s\n%s", h, err, tor, q.trackers(h), q.proc.failureLogs())
			}
		}
		select {
		case <-tick.C:
		case <-q.proc.exited:
			return fmt.Errorf("%v\n%s", q.proc.exitError(), q.proc.failureLogs())
		case <-ctx.Done():
			what := fmt.Sprintf("last state %+v", last)
			if !listed {
				what = "torrent not listed"
			}
			if lastErr != nil {
				what += fmt.Sprintf(", last error %v", lastErr)
			}
			return fmt.Errorf("torrent %s: %w; %s%s\n%s", h, ctx.Err(), what, q.trackers(h), q.proc.failureLogs())
		}
	}
}

// WaitComplete waits until qBittorrent has all of torrent h, checked.
func (q *Qbit) WaitComplete(ctx context.Context, h metainfo.Hash) error {
	return q.WaitFor(ctx, h, QbitTorrent.Complete)
}

// trackers returns the torrent's trackers and their status messages, for
// failure messages.
func (q *Qbit) trackers(h metainfo.Hash) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var list []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
		Msg    string `json:"msg"`
		Peers  int    `json:"num_peers"`
	}
	if err := q.get(ctx, "torrents/trackers", url.Values{"hash": {h.String()}}, &list); err != nil {
		return fmt.Sprintf("\ntrackers: %v", err)
	}
	var b strings.Builder
	for _, tr := range list {
		fmt.Fprintf(&b, "\ntracker %s: status %d, %d peers, %q", tr.URL, tr.Status, tr.Peers, tr.Msg)
	}
	return b.String()
}

// get calls the Web API method with query q and decodes its JSON answer
// into v (a string takes the body as it is).
func (q *Qbit) get(ctx context.Context, method string, query url.Values, v any) error {
	return QbittorrentGet(ctx, q.client, q.api, method, query, v)
}
