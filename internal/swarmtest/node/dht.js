// Runs one node of webtorrent's bittorrent-dht (an independent BEP 5 DHT)
// on 127.0.0.1 for aiotorrent's tests; swarmtest.BittorrentDHT starts it.
//
//   node dht.js BOOTSTRAP_HOST:PORT...
//
// It joins the DHT through the given nodes only, which must be IPv4
// loopback addresses. It reads commands from stdin, one JSON object per
// line, and writes events and replies to stdout, one JSON object per line:
//
//   {"event":"listening","port":P,"id":"HEX"}   first line: its UDP port and node id
//   {"event":"ready","nodes":N}                 bootstrap done, N nodes in its table
//   {"event":"announce","infoHash":"HEX","peer":"IP:PORT"}  a node announced a peer to it
//   {"event":"warning","message":"..."}         something it could not handle (a message it could not decode...)
//   {"event":"refused","to":"HOST:PORT"}        it tried to send beyond loopback; nothing was sent
//
//   {"id":N,"op":"lookup","infoHash":"HEX"}
//     -> {"id":N,"peers":[{"peer":"IP:PORT","from":"IP:PORT"},...],"visited":V}
//        "from" is the node whose reply gave the peer, "" for its own store
//        of announces; V the number of nodes that answered
//   {"id":N,"op":"announce","infoHash":"HEX","port":P}   (P 0: implied_port)
//     -> the same as lookup: it looks up, then announces
//   {"id":N,"op":"nodes"} -> {"id":N,"nodes":["HEXID@IP:PORT",...]}
//   a failure -> {"id":N,"error":"..."}
//
// Commands sent before "ready" wait for it. It exits when stdin closes (the
// test ended, or died without cleaning up) or on SIGTERM/SIGINT.
//
// Loopback only, three ways: the library's default bootstrap routers
// (router.bittorrent.com and others, in k-rpc) are never used because the
// bootstrap list is given explicitly; its socket is bound to 127.0.0.1,
// from which the kernel will not send to other addresses; and the socket's
// send is wrapped to drop, and report as "refused", any datagram to an
// address that is not an IPv4 loopback literal (so no name is resolved
// either).

import dgram from 'node:dgram'
import net from 'node:net'
import readline from 'node:readline'
import DHT from 'bittorrent-dht'

const usage = 'usage: node dht.js BOOTSTRAP_HOST:PORT...'

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fail (what) {
  console.error(`dht.js: ${what}`)
  process.exit(2)
}

function isLoopback4 (host) {
  return net.isIPv4(host) && host.startsWith('127.')
}

const bootstrap = process.argv.slice(2)
if (bootstrap.length === 0) fail(usage)
for (const b of bootstrap) {
  const i = b.lastIndexOf(':')
  const port = Number(b.slice(i + 1))
  if (i < 0 || !isLoopback4(b.slice(0, i)) || !Number.isInteger(port) || port <= 0 || port > 65535) {
    fail(`bootstrap node ${JSON.stringify(b)} is not an IPv4 loopback HOST:PORT; ${usage}`)
  }
}

// The socket is ours, so that its send can be guarded. send takes
// (msg, offset, length, port, address, callback) from k-rpc-socket, and
// (msg, port, address, callback) when Node calls it again itself for a
// datagram queued before the socket was bound; a missing address means
// 127.0.0.1.
const socket = dgram.createSocket('udp4')
const send = socket.send
socket.send = function (...args) {
  const [port, address] = typeof args[2] === 'number' ? [args[3], args[4]] : [args[1], args[2]]
  if (typeof address === 'string' ? !isLoopback4(address) : address !== undefined && typeof address !== 'function') {
    out({ event: 'refused', to: `${address}:${port}` })
    const cb = args[args.length - 1]
    if (typeof cb === 'function') process.nextTick(cb, new Error(`dht.js: refused to send to ${address}`))
    return
  }
  return send.apply(this, args)
}
// Bound before the DHT exists, so that no send can bind it to the wildcard
// address first (Node binds an unbound socket on its first send).
socket.bind(0, '127.0.0.1')

const dht = new DHT({ bootstrap, socket })

let ready = false
const waiting = []

dht.on('warning', err => out({ event: 'warning', message: String(err && err.message ? err.message : err) }))
dht.on('error', err => {
  console.error(`dht.js: error: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
dht.on('listening', () => {
  out({ event: 'listening', port: dht.address().port, id: dht.nodeId.toString('hex') })
})
dht.on('ready', () => {
  ready = true
  out({ event: 'ready', nodes: dht.nodes.toArray().length })
  for (const cmd of waiting.splice(0)) run(cmd)
})
dht.on('announce', (peer, infoHash) => {
  out({ event: 'announce', infoHash: infoHash.toString('hex'), peer: `${peer.host}:${peer.port}` })
})

// lookupPeers runs fn (lookup or announce, which looks up first) and
// collects the peers found for infoHash meanwhile, each with the node that
// gave it ("" for its own store of announces).
function lookupPeers (id, infoHash, fn) {
  const found = new Map()
  const onpeer = (peer, hash, from) => {
    if (hash.toString('hex') !== infoHash) return
    const p = `${peer.host}:${peer.port}`
    const f = from ? `${from.address || from.host}:${from.port}` : ''
    found.set(`${p} ${f}`, { peer: p, from: f })
  }
  dht.on('peer', onpeer)
  fn((err, visited) => {
    dht.removeListener('peer', onpeer)
    if (err) return out({ id, error: String(err.message || err) })
    out({ id, peers: [...found.values()], visited })
  })
}

function run (cmd) {
  const id = cmd.id
  const hash = typeof cmd.infoHash === 'string' ? cmd.infoHash.toLowerCase() : ''
  const needHash = cmd.op === 'lookup' || cmd.op === 'announce'
  if (needHash && !/^[0-9a-f]{40}$/.test(hash)) return out({ id, error: `bad infoHash ${JSON.stringify(cmd.infoHash)}` })
  switch (cmd.op) {
    case 'lookup':
      return lookupPeers(id, hash, done => dht.lookup(hash, done))
    case 'announce': {
      const port = cmd.port
      if (!Number.isInteger(port) || port < 0 || port > 65535) return out({ id, error: `bad port ${JSON.stringify(port)}` })
      return lookupPeers(id, hash, done => dht.announce(hash, port, done))
    }
    case 'nodes':
      return out({ id, nodes: dht.nodes.toArray().map(n => `${n.id.toString('hex')}@${n.host}:${n.port}`) })
    default:
      return out({ id, error: `unknown op ${JSON.stringify(cmd.op)}` })
  }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', line => {
  if (line.trim() === '') return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    return out({ event: 'warning', message: `dht.js: bad command ${JSON.stringify(line)}: ${err.message}` })
  }
  if (ready) run(cmd)
  else waiting.push(cmd)
})

let stopping = false
function stop () {
  if (stopping) return
  stopping = true
  dht.destroy(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
rl.on('close', stop)
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
