package swarmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// Exported for benchmark programs (bench/dlbench), which run the same
// real clients outside a test and so cannot use the helpers above that
// take a testing.TB: the configuration knowledge is kept in one place,
// and the harnesses above use these too.

// Aria2Args returns the options that [Aria2Seed] and [Aria2Leech] give
// aria2c, before their own and the torrent: loopback only, no DHT, LSD or
// PEX, so the trackers are its only source of peers. port is its
// BitTorrent port on 127.0.0.1, dir the data folder, logFile its log and
// logLevel that log's level ("info" writes a line per block; "notice"
// does not).
func Aria2Args(port int, dir, logFile, logLevel string) []string {
	return []string{
		"--no-conf=true", // ignore ~/.aria2/aria2.conf
		// Loopback only, and no peer source but the trackers.
		"--interface=127.0.0.1",
		"--disable-ipv6=true",
		"--enable-dht=false",
		"--enable-dht6=false",
		"--bt-enable-lpd=false",
		"--enable-peer-exchange=false",
		"--listen-port=" + strconv.Itoa(port),
		// Announce every few seconds whatever the tracker says.
		"--bt-tracker-interval=2",
		// Exit if the process that started it dies without stopping it.
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--dir=" + dir,
		"--allow-overwrite=true",
		"--auto-file-renaming=false",
		"--file-allocation=none",
		"--bt-save-metadata=false",
		"--summary-interval=0",
		"--console-log-level=notice",
		"--log=" + logFile,
		"--log-level=" + logLevel,
	}
}

// QbittorrentProfile prepares the fresh folder profile for
// qbittorrent-nox as [Qbittorrent] runs it: it writes the qBittorrent.conf
// of qbittorrentConf (see there for what each setting does: loopback
// only, no DHT, LSD, PEX or port mapping, no encryption, TCP only) into
// it, and returns the arguments and the environment (added to the
// process's own) to start qbittorrent-nox with, so that nothing of it
// lands in the real home folder. port is the BitTorrent port and webPort
// the Web UI port, both on 127.0.0.1.
func QbittorrentProfile(profile string, port, webPort int) (args, env []string, err error) {
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, nil, err
	}
	conf := fmt.Sprintf(qbittorrentConf, filepath.ToSlash(profile), port, webPort)
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
		return nil, nil, err
	}
	args = []string{"--profile=" + profile, "--webui-port=" + strconv.Itoa(webPort)}
	env = []string{"HOME=" + profile, "XDG_CONFIG_HOME=" + profile, "XDG_DATA_HOME=" + profile, "XDG_CACHE_HOME=" + profile}
	return args, env, nil
}

// QbittorrentGet calls the qBittorrent Web API method (such as
// "torrents/info") with query, at api ("http://127.0.0.1:PORT/api/v2/"),
// and decodes its JSON answer into v (a *string takes the body as it is).
func QbittorrentGet(ctx context.Context, client *http.Client, api, method string, query url.Values, v any) error {
	u := api + method
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %q", u, resp.Status, body)
	}
	if s, ok := v.(*string); ok {
		*s = string(body)
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %q", u, err, body)
	}
	return nil
}

// LibtorrentScript returns the path of libtorrent_client.py, the
// libtorrent peer that [Libtorrent] runs with /usr/bin/python3 (see the
// script's documentation for its flags and status lines). It is found
// next to this source file, so it fails in a program built with
// -trimpath or moved away from its source tree.
func LibtorrentScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("swarmtest: cannot find its own source directory")
	}
	script := filepath.Join(filepath.Dir(file), "libtorrent_client.py")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("swarmtest: %w (built with -trimpath?)", err)
	}
	return script, nil
}

// SystemPython is the interpreter Debian's python3-libtorrent is built
// for, which must run [LibtorrentScript].
const SystemPython = systemPython

// FreePort returns a port free for both TCP and UDP on 127.0.0.1 a moment
// ago, for a program that must be told its port.
func FreePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free for both TCP and UDP on 127.0.0.1")
}

// FileTail returns the last n bytes of the file name, or why it cannot,
// for error messages: the end of a program's log.
func FileTail(name string, n int64) string { return fileTail(name, n, nil) }
