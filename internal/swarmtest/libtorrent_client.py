"""A libtorrent peer for aiotorrent's interop tests (see libtorrent.go).

Run with /usr/bin/python3 (Debian's python3-libtorrent):

    libtorrent_client.py --torrent FILE --save-path DIR [--seed] [--port N]
        [--pex] [--dht] [--dht-bootstrap HOST:PORT,...]
        [--dht-announce-interval SECONDS] [--peer HOST:PORT]...
        [--download-limit BYTES_PER_S] [--upload-limit BYTES_PER_S]

It listens on 127.0.0.1 only, with local peer discovery, UPnP and
NAT-PMP off. By default DHT and peer exchange are off too, so its only
sources of peers are the torrent's trackers, all of which it announces
to, and the --peer addresses it connects to. --pex turns on peer
exchange (ut_pex, BEP 11) for the torrent; --dht turns on the DHT, with
the --dht-bootstrap nodes (which turn it on too) as its only bootstrap
nodes (see dht_settings). The rate limits apply to loopback peers too.
It prints its status as one JSON line on stdout every half second, and
at once after any alert (a state change, a tracker reply, a peer
connecting...):

    {"state": "downloading", "progress": 0.25, "num_peers": 1, ...,
     "peers": [{"addr": "127.0.0.1:6881", "source": ["pex"], ...}]}

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
import warnings

import libtorrent as lt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-path", required=True)
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--pex", action="store_true", help="exchange peers (ut_pex)")
    ap.add_argument("--dht", action="store_true", help="turn the DHT on")
    ap.add_argument("--dht-bootstrap", default="",
                    help="turn the DHT on, bootstrapping from these HOST:PORT nodes only")
    ap.add_argument("--dht-announce-interval", type=int, default=0,
                    help="seconds between the torrent's DHT announces (default libtorrent's)")
    ap.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                    help="connect to this peer once the torrent is added")
    ap.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0 none")
    ap.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 none")
    args = ap.parse_args()
    args.dht = args.dht or bool(args.dht_bootstrap)

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
    if args.dht:
        settings.update(dht_settings(args.dht_bootstrap))
        settings["alert_mask"] |= lt.alert.category_t.dht_notification
        if args.dht_announce_interval:
            settings["dht_announce_interval"] = args.dht_announce_interval
    if args.download_limit:
        settings["download_rate_limit"] = args.download_limit
    if args.upload_limit:
        settings["upload_rate_limit"] = args.upload_limit
    # With the default plugins (ut_metadata serves magnet-link peers);
    # ut_pex is turned off per torrent below unless --pex.
    ses = lt.session(settings)
    if args.download_limit or args.upload_limit:
        # libtorrent puts 127.0.0.0/8 and the private ranges in its local
        # peer class, which no rate limit applies to: put every address
        # in the global class instead, the one the limits above are of.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_path
    flags = atp.flags
    flags &= ~lt.torrent_flags.paused
    flags &= ~lt.torrent_flags.auto_managed
    # No LSD for this torrent either, nor peer exchange or DHT unless
    # asked for.
    flags |= lt.torrent_flags.disable_lsd
    if not args.pex:
        flags |= lt.torrent_flags.disable_pex
    if not args.dht:
        flags |= lt.torrent_flags.disable_dht
    if args.seed:
        flags |= lt.torrent_flags.upload_mode  # a seeder never downloads
    atp.flags = flags
    h = ses.add_torrent(atp)
    for p in args.peer:
        host, _, port = p.rpartition(":")
        h.connect_peer((host.strip("[]"), int(port)))

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
            report(ses, h, st, args.dht)
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


def dht_settings(bootstrap):
    """Returns the session settings for a DHT on loopback that
    bootstraps from the nodes in bootstrap ("HOST:PORT,...") alone.

    libtorrent 2.0 takes nodes on 127.0.0.1 as it takes any other, but
    its defaults against Sybil attacks assume every node has an address
    of its own: dht_restrict_routing_ips keeps one routing table entry
    per IP (and per /24 in a bucket), and dht_restrict_search_ips one
    node per IP in a lookup, so with every node on 127.0.0.1 it would
    know and ask only one of them (with three nodes and the defaults,
    the one the other two bootstrapped from kept 1 node in its table,
    not 2). dht_prefer_verified_node_ids prefers node ids derived from
    the node's IP (BEP 42) when a bucket is full; ids seen from local
    addresses, 127.0.0.0/8 among them, count as verified, but it is
    turned off so that nothing depends on that. dht_enforce_node_id
    (off by default) would drop nodes whose ids are not so derived.
    dht_ignore_dark_internet drops packets from a few unallocated class
    A networks only, not 127.0.0.0/8; it is turned off anyway. The DOS
    blocker ignores every packet from an IP that sends
    10 * dht_block_ratelimit (default 5) packets within 10 s, for
    dht_block_timeout (default 300 s): all nodes share 127.0.0.1, so the
    limit is raised far above what a test swarm sends.
    dht_upload_rate_limit (8000 B/s by default) is raised for the same
    reason. The bootstrap nodes are router nodes to libtorrent: it sends
    them queries but does not keep them in its routing table, only the
    nodes they reply with and the nodes that query it. The DHT socket is
    the listen socket, UDP on 127.0.0.1: it cannot reach other
    addresses."""
    return {
        "enable_dht": True,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1 << 20,
    }


# Where libtorrent heard of a peer (peer_info.source bits).
SOURCES = (
    (lt.peer_info.tracker, "tracker"),
    (lt.peer_info.dht, "dht"),
    (lt.peer_info.pex, "pex"),
    (lt.peer_info.lsd, "lsd"),
    (lt.peer_info.resume_data, "resume_data"),
    (32, "incoming"),  # peer_info.incoming, which the binding lacks
)


def peers(h):
    """Returns the torrent's connected peers, past the handshake."""
    out = []
    for p in h.get_peer_info():
        if p.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
            continue
        out.append({
            # The address we connected to, or for an incoming
            # connection, the one it came from.
            "addr": "%s:%d" % p.ip if ":" not in p.ip[0] else "[%s]:%d" % p.ip,
            "source": [name for bit, name in SOURCES if p.source & bit],
            "outgoing": bool(p.flags & lt.peer_info.outgoing_connection),
            "seed": bool(p.flags & lt.peer_info.seed),
            "client": text(p.client),
            "download": p.total_download,
            "upload": p.total_upload,
        })
    return out


def text(s):
    """Returns s, which the binding gives as bytes or str, as str."""
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else s


def report(ses, h, st, dht):
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
        "peers": peers(h),
    }
    if dht:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            line["dht_nodes"] = ses.status().dht_nodes
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
