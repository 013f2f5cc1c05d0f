package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Seeders that upload no faster than a given rate, for tests that need a
// download to last: one killed at a random moment, say. The limit is the
// seeder's own, so what our side receives it reads at once; a download
// limit of ours would leave data waiting in the kernel's buffers instead.
//
// Every peer here is on 127.0.0.1, which libtorrent (and so qBittorrent)
// counts as the local network and by default exempts from rate limits:
// these helpers turn that exemption off.

// Aria2SeedLimited is [Aria2Seed] with aria2c uploading at most
// bytesPerSec bytes per second for the torrent (--max-upload-limit), to
// all its peers together.
func Aria2SeedLimited(t testing.TB, torrentPath, dataDir string, bytesPerSec int64) *Aria2 {
	t.Helper()
	return startAria2(t, "aria2c seeder", torrentPath, dataDir,
		"--check-integrity=true",
		"--seed-ratio=0.0",
		"--max-upload-limit="+strconv.FormatInt(bytesPerSec, 10),
	)
}

// libtorrentLimitWrapper runs libtorrent_client.py (argv[2], with its
// arguments after it) with every session it makes uploading at most
// argv[1] bytes per second, to all peers together: it sets
// upload_rate_limit and puts every address in the global peer class, the
// one that limit applies to (libtorrent puts 127.0.0.0/8 and the private
// ranges in its unlimited local class). The script is left as it is.
const libtorrentLimitWrapper = `
import runpy, sys
import libtorrent as lt

rate = int(sys.argv[1])
script = sys.argv[2]
make_session = lt.session

class LimitedSession(make_session):
    def __init__(self, settings, *args, **kwargs):
        settings = dict(settings)
        settings["upload_rate_limit"] = rate
        make_session.__init__(self, settings, *args, **kwargs)
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << make_session.global_peer_class_id)
        f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 << make_session.global_peer_class_id)
        self.set_peer_class_filter(f)

lt.session = LimitedSession
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
`

// LibtorrentSeedLimited is [Libtorrent] seeding (seed true) with
// libtorrent uploading at most bytesPerSec bytes per second, to all its
// peers together, loopback ones included. It returns once the peer seeds.
func LibtorrentSeedLimited(t testing.TB, torrentPath, saveDir string, bytesPerSec int64) *LT {
	t.Helper()
	wrap := []string{"-c", libtorrentLimitWrapper, strconv.FormatInt(bytesPerSec, 10)}
	return startLibtorrent(t, torrentPath, saveDir, true, wrap, fmt.Sprintf("limited to %d B/s", bytesPerSec))
}

// SetUploadLimit makes qBittorrent upload at most bytesPerSec bytes per
// second in all (0: no limit), to peers on the local network too
// (loopback included), and checks that it took the setting.
func (q *Qbit) SetUploadLimit(ctx context.Context, bytesPerSec int64) error {
	prefs, err := json.Marshal(map[string]any{"limit_lan_peers": true, "up_limit": bytesPerSec})
	if err != nil {
		return err
	}
	if err := q.post(ctx, "app/setPreferences", url.Values{"json": {string(prefs)}}); err != nil {
		return err
	}
	var got struct {
		UpLimit       int64 `json:"up_limit"`
		LimitLANPeers bool  `json:"limit_lan_peers"`
	}
	if err := q.get(ctx, "app/preferences", nil, &got); err != nil {
		return err
	}
	if got.UpLimit != bytesPerSec || !got.LimitLANPeers {
		return fmt.Errorf("qbittorrent-nox: asked for an upload limit of %d B/s on LAN peers too, preferences say up_limit %d, limit_lan_peers %v",
			bytesPerSec, got.UpLimit, got.LimitLANPeers)
	}
	return nil
}

// post calls the Web API method with the form values, expecting 200 OK.
func (q *Qbit) post(ctx context.Context, method string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.api+method, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := q.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", q.api+method, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %q", q.api+method, resp.Status, body)
	}
	return nil
}
