// The demo's scripted conversation: a Matrix user ("demo") and an IRC user ("ircfriend") talk in #demo
// through the bridge. Prints each step; exits non-zero if a message does not make it across.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [hs, ircPort, dir] = process.argv.slice(2);
const require = createRequire(new URL('../packages/irc/package.json', import.meta.url));
const IRC = require('irc-framework');
const log = (m) => console.log(`  ${m}`);

async function matrix(method, path, token, body) {
  const res = await fetch(hs + path, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function login() {
  const pwFile = `${dir}/demo-password`;
  if (!existsSync(pwFile)) {
    const password = randomBytes(6).toString('hex');
    const { nonce } = await matrix('GET', '/_synapse/admin/v1/register');
    const mac = createHmac('sha1', 'test-shared-secret').update(`${nonce}\0demo\0${password}\0notadmin`).digest('hex');
    await matrix('POST', '/_synapse/admin/v1/register', null, { nonce, username: 'demo', password, mac, admin: false, displayname: 'Demo' });
    writeFileSync(pwFile, password);
  }
  const password = readFileSync(pwFile, 'utf8').trim();
  const r = await matrix('POST', '/_matrix/client/v3/login', null, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'demo' }, password });
  return r.access_token;
}

const until = async (fn, what, ms = 30000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

const token = await login();
log('Matrix user @demo:localhost is logged in');
const irc = new IRC.Client({ auto_reconnect: false });
const heard = [];
irc.on('privmsg', (e) => heard.push(e));
await new Promise((resolve) => { irc.once('registered', resolve); irc.connect({ host: '127.0.0.1', port: Number(ircPort), nick: 'ircfriend' }); });
irc.join('#demo');
log('IRC user ircfriend joined #demo');

const { room_id: roomId } = await matrix('POST', `/_matrix/client/v3/join/${encodeURIComponent('#irc_demo_#demo:localhost')}`, token, {});
log(`@demo joined #irc_demo_#demo:localhost → ${roomId} (the bridge created the portal room on demand)`);

await matrix('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/demo-${Date.now()}`, token,
  { msgtype: 'm.text', body: 'Hello from Matrix! **bold**', format: 'org.matrix.custom.html', formatted_body: 'Hello from Matrix! <b>bold</b>' });
const got = await until(() => heard.find((e) => e.message.startsWith('Hello from Matrix')), 'the message on IRC');
log(`Matrix → IRC: ircfriend saw <${got.nick}> ${JSON.stringify(got.message)}`);

irc.say('#demo', 'Hi Demo, greetings from \x02IRC\x02!');
const ev = await until(async () => {
  const r = await matrix('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=20`, token);
  return r.chunk.find((e) => String(e.content?.body ?? '').startsWith('Hi Demo'));
}, 'the message on Matrix');
log(`IRC → Matrix: ${ev.sender} said ${JSON.stringify(ev.content.body)} (html: ${ev.content.formatted_body})`);
irc.quit('demo done');
log('both directions work');
process.exit(0);
