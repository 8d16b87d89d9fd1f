// A bare Node socket.io relay (bench/signalling.py's comparison; NOT part of the product): what a
// user would write instead. Namespace /socket on /socket.io; join-room answers `created` with the
// participants and tells the others `user-connected`; signal goes to `to` with `from` added.
//   node relay.mjs <port>
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http, { transports: ['websocket', 'polling'], cors: { origin: true } });
const ns = io.of('/socket');
ns.on('connection', (socket) => {
  socket.on('join-room', async (room) => {
    const name = `voice:${room}`;
    socket.join(name);
    const participants = [...(ns.adapter.rooms.get(name) ?? [])].map((id) => ({ socketId: id }));
    socket.emit('created', { roomId: room, participants });
    socket.to(name).emit('user-connected', { socketId: socket.id });
  });
  socket.on('signal', (payload) => {
    if (payload && typeof payload.to === 'string') ns.to(payload.to).emit('signal', { ...payload, from: socket.id });
  });
});
http.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('listening\n'));
