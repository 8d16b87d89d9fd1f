// Two socket.io-client 4 clients through a proxy (tests/test_nginx.py): A in the seed document's
// form (namespace /socket on /socket.io, auth token), B in the desktop form (path /socket, query
// token), both restricted to one transport. Both join one voice room, A offers to B, B answers.
// Prints JSON lines ({recv, args} for every event, {transport} per client) and {done: true}
// when the exchange is complete; exits 1 on a connect error or after 20 s.
//   node proxy_pair.mjs <base url> <polling|websocket> <token A> <token B> <channel id>
import { io } from 'socket.io-client';

const [base, transport, tokenA, tokenB, channelId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const opts = { transports: [transport], upgrade: false, reconnection: false, timeout: 10000 };
const a = io(`${base}/socket`, { ...opts, auth: { token: tokenA } });
const b = io(base, { ...opts, path: '/socket', query: { token: tokenB } });
const fail = (why) => { out({ failed: why }); process.exit(1); };
setTimeout(() => fail('timeout'), 20000);

for (const [name, s] of [['a', a], ['b', b]]) {
  s.onAny((event, ...args) => out({ client: name, recv: event, args }));
  s.on('connect_error', (e) => fail(`${name} connect_error: ${e && e.message}`));
  s.on('error', (e) => fail(`${name} error event: ${JSON.stringify(e)}`));
}

let connected = 0;
const onConnect = () => {
  if (++connected < 2) return;
  out({ a: a.id, b: b.id, transports: [a.io.engine.transport.name, b.io.engine.transport.name] });
  a.emit('join-room', `channel-${channelId}`);
};
a.on('connect', onConnect);
b.on('connect', onConnect);
a.once('created', () => b.emit('join-room', Number(channelId)));
a.on('user-connected', ({ socketId }) => {
  a.emit('signal', { to: socketId, type: 'offer', sdp: { type: 'offer', sdp: `v=0 via ${transport}` } });
});
b.on('signal', ({ from, type }) => {
  if (type === 'offer') b.emit('signal', { to: from, type: 'answer', sdp: { type: 'answer', sdp: 'v=0 answer' } });
});
a.on('signal', ({ type }) => {
  if (type !== 'answer') return;
  out({ done: true, transports: [a.io.engine.transport.name, b.io.engine.transport.name] });
  a.disconnect();
  b.disconnect();
  setTimeout(() => process.exit(0), 100);
});
