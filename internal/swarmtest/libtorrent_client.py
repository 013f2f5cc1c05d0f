"""A libtorrent peer for aiotorrent's interop tests (see libtorrent.go).

Run with /usr/bin/python3 (Debian's python3-libtorrent):

    libtorrent_client.py --torrent FILE --save-path DIR [--seed] [--port N]

It listens on 127.0.0.1 only, with DHT, local peer discovery, UPnP,
NAT-PMP and peer exchange off, so its only source of peers is the
torrent's trackers, all of which it announces to. It prints its status
as one JSON line on stdout every half second, and at once after any
alert (a state change, a tracker reply, a peer connecting...):

    {"state": "downloading", "progress": 0.25, "num_peers": 1, ...}

The first line comes once the torrent is added and carries the listening
port. Alerts (tracker replies and errors, peer connections, failures) go
to stderr as text. It exits when its stdin reaches end of file, or on
SIGTERM or SIGINT. With --seed, it checks the data in DIR first and exits
with status 3 if the data is not complete.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

import libtorrent as lt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-path", required=True)
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()

    settings = {
        # Loopback only, for listening and for connecting out.
        "listen_interfaces": "127.0.0.1:%d" % args.port,
        "outgoing_interfaces": "127.0.0.1",
        # No peer source but the trackers, and no port mapping.
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Every peer here is 127.0.0.1: without this it talks to only one.
        "allow_multiple_connections_per_ip": True,
        # Connect out over TCP only: an outgoing uTP connection to a peer
        # without uTP (aria2c, most small clients) waits 2.5 s to time
        # out before libtorrent tries TCP. Incoming uTP is still accepted.
        "enable_outgoing_utp": False,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        # Tests start peers in any order: retry a peer that was not
        # ready soon, not after the default minute.
        "min_reconnect_time": 1,
        "alert_mask": (
            lt.alert.category_t.error_notification
            | lt.alert.category_t.tracker_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
            | lt.alert.category_t.connect_notification
        ),
    }
    # With the default plugins (ut_metadata serves magnet-link peers);
    # ut_pex is turned off per torrent below.
    ses = lt.session(settings)

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_path
    flags = atp.flags
    flags &= ~lt.torrent_flags.paused
    flags &= ~lt.torrent_flags.auto_managed
    # No peer exchange, DHT or LSD for this torrent either.
    flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    if args.seed:
        flags |= lt.torrent_flags.upload_mode  # a seeder never downloads
    atp.flags = flags
    h = ses.add_torrent(atp)

    stop = threading.Event()

    def watch_stdin():
        try:
            # os.read, not sys.stdin: a thread blocked in a buffered read
            # holds a lock that stops the interpreter from exiting.
            while os.read(0, 4096):
                pass
        finally:
            stop.set()
            ses.post_session_stats()  # an alert, to end wait_for_alert

    threading.Thread(target=watch_stdin, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    status = 0
    next_report = 0.0
    while not stop.is_set():
        alerts = ses.pop_alerts()
        for a in alerts:
            print("%.3f %s: %s" % (time.time(), a.what(), a.message()), file=sys.stderr, flush=True)
        now = time.monotonic()
        if alerts or now >= next_report:
            next_report = now + args.interval
            st = h.status()
            report(ses, st)
            if args.seed and not checking(st) and st.has_metadata and st.total_wanted_done < st.total_wanted:
                print("seed: data in %s is not complete after checking: %d of %d bytes"
                      % (args.save_path, st.total_wanted_done, st.total_wanted), file=sys.stderr, flush=True)
                status = 3
                break
        # Wake up for the next alert (a state change, a tracker reply...)
        # or the next report, whichever comes first.
        ses.wait_for_alert(max(1, int((next_report - time.monotonic()) * 1000)))

    for a in ses.pop_alerts():
        print("%.3f %s: %s" % (time.time(), a.what(), a.message()), file=sys.stderr, flush=True)
    # Deleting the session sends the "stopped" announces (waiting at most
    # stop_tracker_timeout) and closes the files.
    del h, ses
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def report(ses, st):
    """Prints the status st as one JSON line on stdout."""
    line = {
        "state": str(st.state),
        "progress": st.progress,
        "num_peers": st.num_peers,
        "num_seeds": st.num_seeds,
        "total_done": st.total_done,
        "total_wanted": st.total_wanted,
        "download": st.total_payload_download,
        "upload": st.total_payload_upload,
        "port": ses.listen_port(),
        "error": st.errc.message() if st.errc.value() else "",
    }
    print(json.dumps(line), flush=True)


def checking(st):
    return st.state in (
        lt.torrent_status.checking_files,
        lt.torrent_status.checking_resume_data,
        lt.torrent_status.queued_for_checking,
        lt.torrent_status.allocating,
    )


if __name__ == "__main__":
    main()
