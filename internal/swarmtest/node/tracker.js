// Runs webtorrent's bittorrent-tracker (an independent HTTP and UDP tracker)
// on 127.0.0.1 for aiotorrent's tests; swarmtest.BittorrentTracker starts it.
//
//   node tracker.js INTERVAL_MS [HTTP_PORT [UDP_PORT]]
//
// Ports default to 0 (any free port). Once both sockets listen it prints one
// JSON line, {"http":PORT,"udp":PORT}, to stdout. It exits when stdin
// closes (the test ended, or died without cleaning up) or on SIGTERM/SIGINT.
//
// The package's main entry loads its client, whose WebRTC add-on cannot be
// built offline (npm install --ignore-scripts), so only the server module
// is imported. The server always makes an IPv6 UDP socket too; it is closed
// unbound so that nothing listens beyond 127.0.0.1.

import Server from 'bittorrent-tracker/server'

const usage = 'usage: node tracker.js INTERVAL_MS [HTTP_PORT [UDP_PORT]]'

function num (s, name, def) {
  if (s === undefined) return def
  const n = Number(s)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`tracker.js: bad ${name} ${JSON.stringify(s)}; ${usage}`)
    process.exit(2)
  }
  return n
}

const interval = num(process.argv[2], 'INTERVAL_MS', 0)
if (interval <= 0) {
  console.error(`tracker.js: INTERVAL_MS must be positive; ${usage}`)
  process.exit(2)
}
const httpPort = num(process.argv[3], 'HTTP_PORT', 0)
const udpPort = num(process.argv[4], 'UDP_PORT', 0)
const host = '127.0.0.1'

const server = new Server({
  udp: true,
  http: true,
  ws: false,
  stats: false,
  trustProxy: false,
  interval
})

// Never bind the IPv6 socket (server.listen would bind it to the wildcard
// address); server.close skips a null socket.
server.udp6.close()
server.udp6 = null

function fail (what, err) {
  console.error(`tracker.js: ${what}: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
}

server.on('error', err => fail('server error', err))
// Warnings are bad requests from clients (the server answers them with a
// failure reason); print them, as tests may want to see why.
server.on('warning', err => console.error(`tracker.js: warning: ${err && err.message ? err.message : err}`))

let pending = 2
function listening () {
  if (--pending > 0) return
  const line = JSON.stringify({ http: server.http.address().port, udp: server.udp4.address().port })
  process.stdout.write(line + '\n')
}
server.http.once('listening', listening)
server.udp4.once('listening', listening)
server.http.listen(httpPort, host)
server.udp4.bind(udpPort, host)

let stopping = false
function stop () {
  if (stopping) return
  stopping = true
  // Open HTTP keep-alive connections would hold close() open; end them.
  if (server.http.closeAllConnections) server.http.closeAllConnections()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}

process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.on('error', stop)
process.stdin.resume()
