/**
 * `addressBlock` over IPv6, the way large deployments use it (the reference bridge's
 * `ipv6.prefix`): each Matrix user's connection comes from an address of its own in a /64, and an
 * IRC operator's WHOIS (338, real address) on ergo shows it. The bridge reaches ergo on [::1].
 *
 * The host is set up as the config reference tells an administrator to: the block routed as local
 * (`ip -6 route add local <block> dev lo`) and `net.ipv6.ip_nonlocal_bind=1`, both undone at the
 * end. The block is from the documentation prefix (2001:db8::/32), never routed anywhere. This
 * needs root, as the ident suites do.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import { MatrixUser } from '../harness/matrix-user.js';
import type { IrcUser } from '../harness/irc-user.js';
import { e2e, until } from './env.js';
import { IrcUsers, plumbedRoom, restartErgo, startIrcBridge, untag } from './irc-env.js';

const BLOCK = '2001:db8:7e57::/64';
const NONLOCAL_BIND = '/proc/sys/net/ipv6/ip_nonlocal_bind';
let nonlocalBefore = '';
let routeAdded = false;
let bridge: TrestleBridge | undefined;
let oper: IrcUser;
const users = new IrcUsers();

beforeAll(async () => {
  try {
    nonlocalBefore = readFileSync(NONLOCAL_BIND, 'utf8').trim();
    execFileSync('ip', ['-6', 'route', 'replace', 'local', BLOCK, 'dev', 'lo'], { stdio: 'pipe' });
    routeAdded = true;
    writeFileSync(NONLOCAL_BIND, '1');
  } catch (err) {
    throw new Error(`cannot make ${BLOCK} local to this host (needs root and iproute2): ${(err as Error).message}`);
  }
  restartErgo('', { ERGO_IPV6: '1' });
  bridge = await startIrcBridge({ host: '::1', addressBlock: BLOCK });
  oper = await users.addOper('v6oper', ['#ipv6']);
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
  if (routeAdded) execFileSync('ip', ['-6', 'route', 'del', 'local', BLOCK, 'dev', 'lo'], { stdio: 'ignore' });
  if (nonlocalBefore) writeFileSync(NONLOCAL_BIND, nonlocalBefore);
  restartErgo(); // the other suites' ergo
});

/** The real address of `nick` as the oper's WHOIS shows it (338). */
async function realAddress(nick: string): Promise<string> {
  const from = oper.raw.length;
  oper.client.raw(`WHOIS ${nick}`);
  await until(() => oper.raw.slice(from).some((l) => / 318 /.test(l)), `the WHOIS of ${nick} to end`);
  const line = oper.raw.slice(from).map(untag).find((l) => / 338 /.test(l));
  if (!line) throw new Error(`no 338 in the WHOIS of ${nick}`);
  // `:server 338 oper nick [user@host] address :Actual user@host, Actual IP`: the address is the token before the text;
  // ergo writes ::1 as 0::1 (an IRC parameter cannot start with a colon): compared in canonical form
  return new URL(`http://[${line.split(' :')[0]!.split(' ').at(-1)!}]/`).hostname.slice(1, -1);
}

describe('IRC bridge: addressBlock over IPv6', () => {
  it('gives each Matrix user\'s connection an address of its own in the /64; the bridge\'s own connection keeps the host\'s', async () => {
    const stamp = Date.now();
    const ada = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircsixa${stamp}`, { displayName: 'Sixa' });
    const bob = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircsixb${stamp}`, { displayName: 'Sixb' });
    const roomId = await plumbedRoom(ada, bridge!.matrix.botUserId, '#ipv6');
    await ada.invite(roomId, bob.userId);
    await bob.join(roomId);
    for (const [u, text] of [[ada, 'from sixa'], [bob, 'from sixb']] as const) {
      await u.sendText(roomId, text);
      await oper.waitFor((m) => m.target === '#ipv6' && m.message === text);
    }
    const a = await realAddress('Sixa[m]'), b = await realAddress('Sixb[m]');
    for (const ip of [a, b]) expect(ip).toMatch(/^2001:db8:7e57::?[0-9a-f:]*$/);
    expect(a).not.toBe(b);
    expect(await realAddress('trestlebot')).toBe('::1');
  });
});
