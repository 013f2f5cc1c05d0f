package metainfo

import "errors"

// ErrV2Only is returned for a torrent or magnet link that has only a
// BitTorrent v2 (BEP 52) identity. Hybrid v1+v2 torrents work through their
// v1 part; v2-only ones are not supported yet.
var ErrV2Only = errors.New("BitTorrent v2-only torrents are not supported yet (hybrid v1+v2 torrents are)")
