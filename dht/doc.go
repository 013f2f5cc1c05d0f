// Package dht is a node of the BitTorrent Mainline DHT (BEP 5): it finds
// the peers of an info hash without a tracker, and announces ours.
//
// The package has three layers, each usable on its own:
//
//   - KRPC messages (ParseMsg, Msg.Marshal): the bencoded queries, responses
//     and errors, parsed with strict bounds on size, nesting and every field.
//   - Table: the Kademlia routing table of K-buckets around our node id.
//   - Server: a node on one UDP socket that answers ping, find_node,
//     get_peers and announce_peer, and runs iterative lookups (GetPeers,
//     FindNode, Announce) for its caller.
//
// A Server contacts only the addresses it is given (Config.Bootstrap,
// Config.Nodes) and the nodes they lead to; DefaultBootstrap lists the
// public routers for a caller that wants the public DHT.
package dht
