// The signalling benchmark's load (bench/signalling.py runs it; not a test). socket.io-client 4
// over websocket, namespace /socket on /socket.io, like the seed document's clients.
//
//   node drive.mjs '<json config>'
//   config: {urls: [base url per socket, cycled], tokens: [token per socket, cycled], room,
//            sockets: 200, seconds: 10, idle: false}
// With idle: true it only connects the sockets, prints {phase: "connected"} and holds them until its
// stdin closes (the idle-memory figure).
//
// 1. Connects `sockets` sockets (in batches of 50) and waits for all of them.
// 2. Join: every socket emits join-room for the ONE room at once; timed until every socket has its
//    `created` and every earlier participant has heard `user-connected` of every later one
//    (n(n-1)/2 of them in all).
// 3. Signalling: sockets 2k and 2k+1 are a pair; every pair ping-pongs `signal` (offer from the
//    first, answer straight back from the second), one signal in flight per pair, for `seconds`.
//    Counts relayed signals (each signal a client received) and the offer->answer round trip.
// Prints JSON lines on stdout: {phase: "connected"}, {phase: "joined", joinSeconds},
// {phase: "signal-start"}, {phase: "signal-end", relayed, seconds, p50, p99, roundTrips}.
// The driver prints the phase lines as they happen so the caller can read server CPU at each.
import { io } from 'socket.io-client';

const cfg = JSON.parse(process.argv[2]);
const n = cfg.sockets ?? 200;
const seconds = cfg.seconds ?? 10;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (why) => { out({ failed: String(why) }); process.exit(1); };
setTimeout(() => fail('timeout'), (seconds + 120) * 1000).unref();

function connect(i) {
  const base = cfg.urls[i % cfg.urls.length];
  const token = cfg.tokens[i % cfg.tokens.length];
  return new Promise((resolve, reject) => {
    const s = io(`${base}/socket`, {
      transports: ['websocket'], upgrade: false, reconnection: false, timeout: 30000,
      auth: { token }, forceNew: true,
    });
    s.once('connect', () => resolve(s));
    s.once('connect_error', (e) => reject(new Error(`connect_error: ${e && e.message}`)));
    s.on('error', (e) => fail(`error event: ${JSON.stringify(e)}`));
  });
}

const socks = [];
for (let i = 0; i < n; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 50); j++) batch.push(connect(j));
  socks.push(...(await Promise.all(batch).catch(fail)));
}
out({ phase: 'connected', sockets: socks.length });
if (cfg.idle) {
  // idle sockets for the memory figure: held until the caller closes our stdin
  process.stdin.resume();
  await new Promise((r) => process.stdin.on('end', r));
  for (const s of socks) s.disconnect();
  setTimeout(() => process.exit(0), 200);
  await new Promise(() => {});
}

// 2. join, all at once
const joinSeconds = await new Promise((resolve) => {
  const want = (n * (n - 1)) / 2;
  let created = 0;
  let announced = 0;
  let t0 = 0;
  // >= : a relay whose join handler yields between entering the room and announcing (the bare
  // python-socketio relay as shipped) may announce a pair both ways; that must not hang the round.
  const check = () => { if (created === n && announced >= want) resolve((performance.now() - t0) / 1000); };
  for (const s of socks) {
    s.once('created', () => { created++; check(); });
    s.on('user-connected', () => { announced++; check(); });
  }
  t0 = performance.now();
  for (const s of socks) s.emit('join-room', cfg.room);
});
out({ phase: 'joined', joinSeconds });
for (const s of socks) s.off('user-connected');
await new Promise((r) => setTimeout(r, 300));

// 3. ping-pong
const rtts = [];
let relayed = 0;
let stopAt = 0;
let inFlight = 0;
let finish;
const finished = new Promise((r) => { finish = r; });
for (let k = 0; k + 1 < n; k += 2) {
  const a = socks[k];
  const b = socks[k + 1];
  let sentAt = 0;
  const ping = () => {
    if (performance.now() >= stopAt) {
      if (--inFlight === 0) finish();
      return;
    }
    sentAt = performance.now();
    a.emit('signal', { to: b.id, type: 'offer', sdp: `v=0 ${k} ${sentAt}` });
  };
  b.on('signal', (data) => {
    relayed++;
    b.emit('signal', { to: data.from, type: 'answer', sdp: data.sdp });
  });
  a.on('signal', () => {
    relayed++;
    rtts.push(performance.now() - sentAt);
    ping();
  });
  a.ping = ping;
}
out({ phase: 'signal-start' });
const t0 = performance.now();
stopAt = t0 + seconds * 1000;
for (let k = 0; k + 1 < n; k += 2) { inFlight++; socks[k].ping(); }
await Promise.race([finished, new Promise((r) => setTimeout(r, seconds * 1000 + 5000))]);
const elapsed = (performance.now() - t0) / 1000;
rtts.sort((x, y) => x - y);
const pct = (p) => (rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * p))] : NaN);
out({ phase: 'signal-end', relayed, seconds: elapsed, roundTrips: rtts.length, p50: pct(0.5), p99: pct(0.99) });
for (const s of socks) s.disconnect();
setTimeout(() => process.exit(0), 200);
