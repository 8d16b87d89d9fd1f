// Runs the seed document's "Полный пример клиента" verbatim (read from the document itself) with
// Node.js socket.io-client 4, with only the server URL and the token substituted, and with stub
// WebRTC objects standing in for the browser's. Prints one JSON line per thing that happened.
//   node seed_client.mjs <seed.md> <base url> <token> <channel id>
// Exits (after disconnecting) when stdin closes.
import { readFileSync } from 'node:fs';
import { io } from 'socket.io-client';

const [seedPath, base, token, channelId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const doc = readFileSync(seedPath, 'utf8');
const section = doc.slice(doc.indexOf('### Полный пример клиента'));
const code = section.split('```javascript')[1].split('```')[0];
const substituted = code
  .split("'http://localhost:5000/socket'").join(JSON.stringify(base + '/socket'))
  .split("'your_jwt_token'").join(JSON.stringify(token));

let me = 'pending';
class RTCPeerConnection {
  constructor() { this.negotiating = false; }
  addTrack() {
    if (!this.negotiating) {
      this.negotiating = true;
      setTimeout(() => this.onnegotiationneeded && this.onnegotiationneeded(), 0);
    }
  }
  async createOffer() { return { type: 'offer', sdp: `v=0\r\no=- offer-from-${me}\r\n` }; }
  async createAnswer() { return { type: 'answer', sdp: `v=0\r\no=- answer-from-${me}\r\n` }; }
  async setLocalDescription(d) {
    this.localDescription = d;
    setTimeout(() => this.onicecandidate && this.onicecandidate({
      candidate: { candidate: `candidate:1 1 UDP 2130706431 10.0.0.1 5440 typ host ${me}`, sdpMid: '0', sdpMLineIndex: 0 },
    }), 0);
  }
  async setRemoteDescription(d) { out({ remote: d.type, sdp: d.sdp }); }
  async addIceCandidate(c) { out({ candidate: c.candidate }); }
  close() { out({ closed: true }); }
}
const RTCSessionDescription = function (d) { return d; };
const RTCIceCandidate = function (c) { return c; };
const Audio = function () { return { play() {} }; };
const navigator = { mediaDevices: { getUserMedia: async () => ({ getTracks: () => [{ kind: 'audio' }] }) } };

const AsyncFunction = (async () => {}).constructor;
const run = new AsyncFunction('io', 'navigator', 'RTCPeerConnection', 'RTCSessionDescription', 'RTCIceCandidate',
  'Audio', substituted + '\nreturn { socket, joinRoom, peerConnections };');
const { socket, joinRoom, peerConnections } = await run(io, navigator, RTCPeerConnection, RTCSessionDescription,
  RTCIceCandidate, Audio);

socket.onAny((event, ...args) => out({ recv: event, args }));
socket.on('connect', () => {
  me = socket.id;
  out({ connected: socket.id });
  joinRoom(channelId);
});
socket.on('user-disconnected', (id) => out({ gone: id, peers: Object.keys(peerConnections) }));
process.stdin.on('data', () => {});
process.stdin.on('end', () => { socket.disconnect(); setTimeout(() => process.exit(0), 100); });
