// The desktop client's form: connects before login with an empty token on engine.io path /socket,
// logs in over HTTP, then joins with the channel id as a number and the token as an argument.
// Answers offers using the peer id it reads from `to` (as the desktop client does).
//   node desktop_client.mjs <base url> <email> <password> <channel id>
import { io } from 'socket.io-client';

const [base, email, password, channelId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const socket = io(base, { path: '/socket', query: { token: '' } });
socket.onAny((event, ...args) => out({ recv: event, args }));
socket.on('connect', async () => {
  out({ connected: socket.id });
  const r = await fetch(`${base}/api/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  const { token } = await r.json();
  out({ loggedIn: r.status });
  socket.emit('join-room', Number(channelId), token);
});
socket.on('signal', ({ to, type }) => {
  if (type === 'offer') socket.emit('signal', { to, type: 'answer', sdp: { type: 'answer', sdp: 'v=0 desktop' } });
});
socket.on('connect_error', (e) => out({ connectError: String(e && e.message) }));
process.stdin.on('data', () => {});
process.stdin.on('end', () => { socket.disconnect(); setTimeout(() => process.exit(0), 100); });
