package swarmtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Exported for benchmark programs (bench/dlbench), which run the same
// real clients outside a test and so cannot use the helpers above that
// take a testing.TB: the configuration knowledge is kept in one place.

// QbittorrentConf returns the qBittorrent.conf that [Qbittorrent] writes
// (see qbittorrentConf for what each setting does): loopback only, no DHT,
// LSD, PEX or port mapping, no encryption, TCP only. profile is the folder
// given to qbittorrent-nox as --profile; port is the BitTorrent port and
// webPort the Web UI port, both on 127.0.0.1. Write it to
// PROFILE/qBittorrent/config/qBittorrent.conf.
func QbittorrentConf(profile string, port, webPort int) string {
	return fmt.Sprintf(qbittorrentConf, filepath.ToSlash(profile), port, webPort)
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
