// ProjectVoice reference web client: plain JavaScript, the REST API under /api and the
// Socket.IO events of asyncapi/projectvoice.yaml. No build step, nothing fetched from elsewhere.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

const state = {
  token: localStorage.getItem('pv.token'),
  user: null,
  servers: [],
  server: null,          // the selected server (detail)
  channel: null,         // the selected channel
  textChannel: null,     // the text channel we are subscribed to
  subscribed: null,      // its id once the server confirmed (`subscribed`)
  messages: new Map(),   // id -> message of textChannel
  voice: null,           // {channelId, participants: Map socketId -> {userData, micToggle}}
  micOn: true,
  presence: new Map(),   // userId -> status, from REST user objects and `presence-updated`
  friends: [],           // GET /friends
  typing: new Map(),     // userId -> {username, until} in textChannel (from `user-typing`)
};
// `error` codes with which the server removes a socket from its voice room.
const EVICTED = new Set(['removed_from_server', 'server_unavailable', 'channel_deleted', 'account_unavailable']);
const peers = new Map();  // socketId -> {pc, polite, makingOffer, ignoreOffer, queue, audio}
let socket = null;
let localStream = null;

// Debug handle for tests and the console.
window.pv = { state, peers, get socket() { return socket; } };

// ---------------------------------------------------------------- REST

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(`/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && state.token) logout(false);  // the session is over already
  if (!res.ok) throw new Error((data && data.error) || `${method} ${path}: HTTP ${res.status}`);
  return data;
}

function status(text, isError = false) {
  const s = $('#status');
  s.textContent = text;
  s.className = isError ? 'error' : 'muted';
}

// ---------------------------------------------------------------- accounts

async function onAuth(form, path) {
  const f = new FormData(form);
  try {
    const { token, user } = await api('POST', path, Object.fromEntries(f));
    state.token = token;
    localStorage.setItem('pv.token', token);
    await start(user);
  } catch (e) {
    $('#auth-error').textContent = e.message;
  }
}

async function start(user) {
  state.user = user || await api('GET', '/auth/me');
  $('#auth').hidden = true;
  $('#app').hidden = false;
  $('#me').textContent = `${state.user.username}#${state.user.tag}`;
  connectSocket();
  api('GET', '/users/').then((p) => { $('#status-select').value = p.status; }).catch(() => {});
  await Promise.all([loadServers(), loadFriends()]);
}

// Log out: the server ends this session (its token stops working everywhere), then the page forgets it.
async function logout(endSession = true) {
  leaveVoice();
  if (socket) socket.disconnect();
  socket = null;
  const token = state.token;
  state.token = null;
  localStorage.removeItem('pv.token');
  if (endSession && token) {
    await fetch('/api/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }
  location.reload();
}

// ---------------------------------------------------------------- servers and channels

async function loadServers(selectId) {
  state.servers = await api('GET', '/servers');
  const list = $('#server-list');
  list.replaceChildren(...state.servers.map((s) => {
    const li = el('li', { textContent: s.name });
    li.dataset.id = s.id;
    li.onclick = () => selectServer(s.id);
    return li;
  }));
  const id = selectId || (state.server && state.server.id) || (state.servers[0] && state.servers[0].id);
  if (id) await selectServer(id);
}

async function selectServer(id) {
  state.server = await api('GET', `/servers/${id}`);
  for (const li of $('#server-list').children) li.classList.toggle('selected', li.dataset.id === String(id));
  $('#server-name').textContent = state.server.name;
  $('#invite-button').hidden = false;
  $('#invite-token').textContent = '';
  $('#channel-form').hidden = false;
  for (const m of state.server.members) state.presence.set(m.userId, m.user.status);
  renderChannels();
  renderMembers();
}

// Members with their presence dot and role badges (`roles`, highest first, in the role's colour).
function renderMembers() {
  const members = state.server ? [...state.server.members] : [];
  members.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id - b.id);
  $('#members-title').hidden = !state.server;
  $('#member-list').replaceChildren(...members.map((m) => {
    const li = person(m.userId, m.user.username);
    li.append(...m.roles.map((r) => {
      const badge = el('span', { className: 'badge', textContent: r.name, title: `position ${r.position}` });
      badge.style.color = r.color;
      badge.dataset.roleId = r.id;
      return badge;
    }));
    return li;
  }));
}

function renderChannels() {
  const channels = [...state.server.channels].sort((a, b) => a.position - b.position || a.id - b.id);
  $('#channel-list').replaceChildren(...channels.map((c) => {
    const li = el('li', { textContent: c.name });
    li.dataset.id = c.id;
    li.dataset.type = c.type;
    li.classList.toggle('selected', state.channel && state.channel.id === c.id);
    li.onclick = () => selectChannel(c);
    return li;
  }));
}

async function selectChannel(channel) {
  state.channel = channel;
  renderChannels();
  status('');
  $('#text-view').hidden = channel.type !== 'text';
  $('#voice-view').hidden = channel.type !== 'voice';
  if (channel.type === 'text') await openText(channel);
  else renderVoice();
}

// ---------------------------------------------------------------- sessions

async function showSessions() {
  const sessions = await api('GET', '/auth/sessions');
  $('#sessions-view').hidden = false;
  $('#session-list').replaceChildren(...sessions.map((s) => {
    const seen = new Date(s.lastSeenAt).toLocaleString();
    const li = el('li', {}, el('span', {
      className: 'session-info',
      textContent: `${s.userAgent || 'unknown device'} — ${s.ip || 'unknown address'} — last seen ${seen}` }));
    li.dataset.id = s.id;
    li.classList.toggle('current', s.current);
    if (s.current) li.append(' (this device)');
    else {
      const end = el('button', { className: 'link end-session', textContent: 'log out' });
      end.onclick = async () => {
        try {
          await api('DELETE', `/auth/sessions/${s.id}`);
          await showSessions();
        } catch (e) {
          status(e.message, true);
        }
      };
      li.append(' ', end);
    }
    return li;
  }));
}

async function logoutOthers() {
  const { message } = await api('POST', '/auth/logout-others', {});
  status(message);
  await showSessions();
}

// ---------------------------------------------------------------- text channels

async function openText(channel) {
  if (state.textChannel && state.textChannel !== channel.id) socket.emit('unsubscribe-channel', state.textChannel);
  state.textChannel = channel.id;
  state.subscribed = null;
  state.messages = new Map();
  state.typing = new Map();
  renderTyping();
  $('#text-title').textContent = `# ${channel.name}`;
  renderMessages();
  // Subscribe first, then read the newest page: nothing posted in between is missed.
  socket.emit('subscribe-channel', channel.id, state.token);
  try {
    const page = await api('GET', `/messages?channelId=${channel.id}&page=1&limit=50`);
    if (state.textChannel !== channel.id) return;
    for (const m of page.messages) state.messages.set(m.id, m);
    renderMessages();
  } catch (e) {
    status(e.message, true);
  }
}

function renderMessages() {
  const list = $('#messages');
  const sorted = [...state.messages.values()].sort((a, b) => a.id - b.id);
  list.replaceChildren(...sorted.map((m) => {
    const when = new Date(m.createdAt);
    const li = el('li', {},
      el('time', { dateTime: m.createdAt, textContent: when.toLocaleTimeString() }),
      el('span', { className: 'author', textContent: m.user ? m.user.username : `#${m.userId}` }),
      el('span', { className: 'content', textContent: m.content + (m.isEdited ? ' (edited)' : '') }));
    li.dataset.id = m.id;
    return li;
  }));
  list.scrollTop = list.scrollHeight;
}

function onMessageEvent(m) {
  if (m.channelId !== state.textChannel) return;
  state.messages.set(m.id, m);
  renderMessages();
  // A message ends its author's typing (the server sends no separate stop event).
  if (state.typing.delete(m.userId)) renderTyping();
}

// ---------------------------------------------------------------- presence and typing

async function loadFriends() {
  state.friends = await api('GET', '/friends');
  for (const f of state.friends) state.presence.set(f.id, f.status);
  renderFriends();
}

function person(id, username) {
  const status = state.presence.get(id) || 'offline';
  const li = el('li', {}, el('span', { className: 'dot', title: status }),
    el('span', { className: 'member-name', textContent: username }));
  li.dataset.userId = id;
  li.querySelector('.dot').dataset.status = status;
  return li;
}

function renderFriends() {
  $('#friend-list').replaceChildren(...state.friends.map((f) => person(f.id, f.username)));
}

function onPresence({ userId, status }) {
  state.presence.set(userId, status);
  for (const dot of document.querySelectorAll(`.people li[data-user-id="${userId}"] .dot`)) {
    dot.dataset.status = status;
    dot.title = status;
  }
}

// Listeners drop a notice 8 s after its last repeat, or at the author's message.
const TYPING_SHOWN_MS = 8000;
// Senders repeat `typing` every 3 s while typing (the server relays at most that often).
const TYPING_REPEAT_MS = 3000;
let lastTypingSent = 0;

function onUserTyping({ channelId, userId, username }) {
  if (channelId !== state.textChannel) return;
  state.typing.set(userId, { username, until: Date.now() + TYPING_SHOWN_MS });
  renderTyping();
}

function renderTyping() {
  const now = Date.now();
  for (const [id, t] of state.typing) if (t.until <= now) state.typing.delete(id);
  const names = [...state.typing.values()].map((t) => t.username);
  $('#typing').textContent = names.length === 0 ? ''
    : names.length === 1 ? `${names[0]} is typing...`
      : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing...`;
}
setInterval(() => { if (state.typing.size) renderTyping(); }, 1000);

function onTypingInput() {
  const now = Date.now();
  if (!socket || !state.subscribed || now - lastTypingSent < TYPING_REPEAT_MS) return;
  lastTypingSent = now;
  socket.emit('typing', state.subscribed);
}

// ---------------------------------------------------------------- socket

function connectSocket() {
  // The seed document's form: namespace /socket on the default path /socket.io.
  socket = io('/socket', { auth: { token: state.token } });
  socket.on('connect', () => {
    // A new connection has a new socket id and no rooms: subscribe again.
    if (state.textChannel) socket.emit('subscribe-channel', state.textChannel, state.token);
  });
  socket.on('disconnect', dropVoice);  // the server forgets a closed socket's rooms
  socket.on('error', (err) => {
    status(`Server: ${err && err.message}`, true);
    // A refused join-room (no `created` yet), or the server removed us from the room.
    if (state.voice && (!state.voice.joined || EVICTED.has(err && err.code))) dropVoice();
    // This page's session was ended elsewhere (logged out there, or the account blocked): sign out.
    if (err && (err.code === 'session_ended' || err.code === 'account_unavailable')) logout(false);
  });
  socket.on('subscribed', ({ channelId }) => { if (channelId === state.textChannel) state.subscribed = channelId; });
  socket.on('message-created', onMessageEvent);
  socket.on('message-updated', onMessageEvent);
  socket.on('message-deleted', ({ id, channelId }) => {
    if (channelId === state.textChannel && state.messages.delete(id)) renderMessages();
  });
  socket.on('created', onCreated);
  socket.on('user-connected', ({ socketId, userData }) => {
    if (!state.voice) return;
    state.voice.participants.set(socketId, { userData, micToggle: true });
    createPeer(socketId, false);  // the newcomer offers; we answer
    renderVoice();
  });
  socket.on('user-disconnected', (socketId) => {
    closePeer(socketId);
    if (state.voice && state.voice.participants.delete(socketId)) renderVoice();
  });
  socket.on('mic-toggled', ({ socketId, micToggle }) => {
    if (!state.voice) return;
    const p = state.voice.participants.get(socketId);
    if (p) p.micToggle = micToggle;
    if (socketId === socket.id && !micToggle) setLocalMic(false);  // muted by a moderator
    renderVoice();
  });
  socket.on('signal', onSignal);
  socket.on('presence-updated', onPresence);
  socket.on('user-typing', onUserTyping);
}

// ---------------------------------------------------------------- voice

async function joinVoice(channel) {
  try {
    if (!localStream) localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (e) {
    status(`Microphone unavailable: ${e.message}`, true);
    return;
  }
  if (state.voice) leaveVoice();
  state.voice = { channelId: channel.id, joined: false, participants: new Map() };
  setLocalMic(true);
  socket.emit('join-room', channel.id, state.token);
}

function onCreated({ roomId, participants }) {
  if (!state.voice || Number(String(roomId).replace('channel-', '')) !== state.voice.channelId) return;
  state.voice.joined = true;
  for (const p of participants) {
    state.voice.participants.set(p.socketId, { userData: p.userData, micToggle: p.micToggle });
    if (p.socketId === socket.id) setLocalMic(p.micToggle);
    else createPeer(p.socketId, true);  // we are the newcomer: we offer
  }
  renderVoice();
}

function leaveVoice() {
  if (!state.voice) return;
  if (socket) socket.emit('leave-room', state.voice.channelId);
  dropVoice();
}

// Forget the voice room locally: peers closed, microphone released.
function dropVoice() {
  closeAllPeers();
  state.voice = null;
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  localStream = null;
  renderVoice();
}

function setLocalMic(on) {
  state.micOn = on;
  if (localStream) localStream.getAudioTracks().forEach((t) => { t.enabled = on; });
}

function toggleMic() {
  setLocalMic(!state.micOn);
  socket.emit('toggle-mic', state.micOn);
}

// One RTCPeerConnection per peer. The newcomer (who got `created`) adds its microphone at once
// and so makes the first offer; the one already in the room adds its microphone only with its
// answer, so the two do not both offer at first. Later renegotiations use "perfect negotiation":
// on a collision the polite side (the smaller socket id) rolls back and answers, the impolite
// side ignores the other's offer.
function createPeer(socketId, initiator) {
  if (peers.has(socketId)) return peers.get(socketId);
  const pc = new RTCPeerConnection({ iceServers: [] });
  const peer = { pc, polite: socket.id < socketId, makingOffer: false, ignoreOffer: false,
                 queue: Promise.resolve(), audio: new Audio(), log: [], sending: false };
  peer.audio.autoplay = true;
  peers.set(socketId, peer);
  if (initiator) addLocalTracks(peer);
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) send(peer, socketId, { type: 'candidate', candidate: candidate.toJSON() });
  };
  pc.ontrack = ({ track, streams }) => {
    peer.audio.srcObject = streams[0] || new MediaStream([track]);
    peer.audio.play().catch(() => {});
  };
  pc.onnegotiationneeded = async () => {
    try {
      peer.makingOffer = true;
      await pc.setLocalDescription();
      send(peer, socketId, { type: 'offer', sdp: pc.localDescription });
    } catch (e) {
      console.error('offer failed', e);
    } finally {
      peer.makingOffer = false;
    }
  };
  return peer;
}

function addLocalTracks(peer) {
  if (peer.sending || !localStream) return;
  peer.sending = true;
  localStream.getTracks().forEach((t) => peer.pc.addTrack(t, localStream));
}

function send(peer, to, signal) {
  peer.log.push(`> ${signal.type}${signal.sdp ? ':' + signal.sdp.type : ''}`);
  socket.emit('signal', { to, ...signal });
}

function onSignal({ from, type, sdp, candidate }) {
  if (!state.voice) return;
  const peer = peers.get(from) || createPeer(from, false);
  peer.log.push(`< ${type}${sdp && sdp.type ? ':' + sdp.type : ''}`);
  // Handle one peer's signals strictly in order.
  peer.queue = peer.queue.then(() => handleSignal(peer, from, type, sdp, candidate)).catch((e) => console.error('signal', e));
}

async function handleSignal(peer, from, type, sdp, candidate) {
  const pc = peer.pc;
  if (pc.signalingState === 'closed') return;
  if (type === 'offer' || type === 'answer') {
    const desc = typeof sdp === 'string' ? { type, sdp } : sdp;
    const collision = desc.type === 'offer' && (peer.makingOffer || pc.signalingState !== 'stable');
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) return;
    await pc.setRemoteDescription(desc);  // rolls back our own offer on a collision (polite side)
    if (desc.type === 'offer') {
      addLocalTracks(peer);  // joins the transceiver the offer created: no new negotiation
      await pc.setLocalDescription();
      send(peer, from, { type: 'answer', sdp: pc.localDescription });
    }
  } else if (type === 'candidate') {
    try {
      await pc.addIceCandidate(candidate);
    } catch (e) {
      if (!peer.ignoreOffer) throw e;
    }
  }
}

function closePeer(socketId) {
  const peer = peers.get(socketId);
  if (!peer) return;
  peer.pc.close();
  peer.audio.srcObject = null;
  peers.delete(socketId);
}

function closeAllPeers() {
  for (const id of [...peers.keys()]) closePeer(id);
}

function renderVoice() {
  const ch = state.channel;
  if (!ch || ch.type !== 'voice') return;
  const here = state.voice && state.voice.channelId === ch.id;
  $('#voice-title').textContent = `♪ ${ch.name}`;
  $('#voice-join').hidden = here;
  $('#voice-leave').hidden = !here;
  $('#voice-mute').hidden = !here;
  $('#voice-mute').textContent = state.micOn ? 'Mute' : 'Unmute';
  const list = here ? [...state.voice.participants.entries()] : [];
  $('#participants').replaceChildren(...list.map(([sid, p]) => {
    const me = socket && sid === socket.id;
    const li = el('li', { textContent: `${p.userData.username}${me ? ' (you)' : ''}${p.micToggle ? '' : ' — muted'}` });
    li.dataset.socketId = sid;
    li.dataset.userId = p.userData.id;
    li.classList.toggle('muted-mic', !p.micToggle);
    return li;
  }));
}

// ---------------------------------------------------------------- wiring

function form(sel, handler) {
  $(sel).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await handler(ev.target);
    } catch (e) {
      status(e.message, true);
    }
  });
}

form('#login-form', (f) => onAuth(f, '/auth/login'));
form('#register-form', (f) => onAuth(f, '/auth/register'));
form('#server-form', async (f) => {
  const s = await api('POST', '/servers', { name: f.name.value });
  f.reset();
  await loadServers(s.id);
});
form('#join-form', async (f) => {
  const { serverId } = await api('POST', `/invite/invite/${encodeURIComponent(f.token.value.trim())}/accept`, {});
  f.reset();
  await loadServers(serverId);
});
form('#channel-form', async (f) => {
  const c = await api('POST', `/servers/${state.server.id}/channels`, { name: f.name.value, type: f.type.value });
  f.reset();
  await selectServer(state.server.id);
  await selectChannel(c);
});
form('#message-form', async (f) => {
  const m = await api('POST', '/messages', { content: f.content.value, channelId: state.textChannel });
  f.reset();
  lastTypingSent = 0;  // posting ended typing: the next keystroke tells the others at once
  onMessageEvent(m);
});
$('#invite-button').onclick = async () => {
  try {
    const { invite } = await api('POST', `/invite/${state.server.id}/invite`, {});
    $('#invite-token').textContent = `Invite token: ${invite.token}`;
  } catch (e) {
    status(e.message, true);
  }
};
$('#logout').onclick = () => logout();
$('#sessions-button').onclick = () => showSessions().catch((e) => status(e.message, true));
$('#sessions-close').onclick = () => { $('#sessions-view').hidden = true; };
$('#logout-others').onclick = () => logoutOthers().catch((e) => status(e.message, true));
$('#message-form').content.addEventListener('input', onTypingInput);
$('#status-select').onchange = async (ev) => {
  try {
    await api('PUT', '/users/', { status: ev.target.value });  // `presence-updated` follows
  } catch (e) {
    status(e.message, true);
  }
};
$('#voice-join').onclick = () => joinVoice(state.channel);
$('#voice-leave').onclick = leaveVoice;
$('#voice-mute').onclick = () => { toggleMic(); renderVoice(); };

if (state.token) {
  start().catch(() => { state.token = null; localStorage.removeItem('pv.token'); });
}
