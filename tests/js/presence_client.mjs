// A socket.io-client 4 socket in the seed document's form, driven line by line from stdin:
//   {"emit": ["typing", 12]}   emit an event
//   {"disconnect": true}       disconnect (the process stays to report)
// Every received event is written to stdout as {recv, args}; {connected: id} once connected.
//   node presence_client.mjs <base url> <token>
import { io } from 'socket.io-client';
import { createInterface } from 'node:readline';

const [base, token] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const socket = io(`${base}/socket`, { auth: { token }, transports: ['websocket'] });
socket.onAny((event, ...args) => out({ recv: event, args }));
socket.on('connect', () => out({ connected: socket.id }));
socket.on('disconnect', (reason) => out({ disconnected: reason }));
socket.on('connect_error', (e) => out({ connectError: String(e && e.message) }));

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  if (cmd.emit) socket.emit(...cmd.emit);
  if (cmd.disconnect) socket.disconnect();
  out({ done: line });
});
rl.on('close', () => { socket.disconnect(); setTimeout(() => process.exit(0), 100); });
