/**
 * Address blocks (CIDR) for the source addresses of Matrix users' IRC connections (config
 * `addressBlock`), as the reference bridge's `ircClients.ipv6.prefix`: a network that limits or
 * bans per address sees each Matrix user at an address of their own.
 *
 * Pure: parsing a block, how many addresses it gives, and the Nth of them. Which user has which
 * is stored (store.ts) so it stays the same across reconnects and restarts.
 *
 * Usable addresses, numbered from 0:
 * - IPv4 up to /30: all but the network (first) and broadcast (last) address; a /31 (RFC 3021)
 *   and a /32 use every address they have.
 * - IPv6: all but the first (the host part all zeros is the subnet-router anycast address).
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface AddressBlock {
  family: 4 | 6;
  /** The block's first address as a number (host bits cleared). */
  base: bigint;
  prefix: number;
  /** How many addresses it gives. */
  size: bigint;
  /** The offset from `base` of usable address 0. */
  first: bigint;
  /** As written in the config, for messages. */
  text: string;
}

function v4ToBig(a: string): bigint {
  return a.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBig(a: string): bigint {
  let s = a.toLowerCase();
  // an IPv4 tail (::ffff:1.2.3.4) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = v4ToBig(v4[1]!);
    s = `${s.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

/** The canonical text of an IPv6 address (RFC 5952: lower case, the longest run of zero groups as `::`). */
function bigToV6(n: bigint): string {
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((n >> s) & 0xffffn));
  let bestAt = -1, bestLen = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** Parse `address/prefix`; throws an Error saying what is wrong. */
export function parseBlock(text: string): AddressBlock {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) throw new Error(`${JSON.stringify(text)} is not a block: write an address, a slash and a prefix length, e.g. 2001:db8:1::/64 or 127.0.1.0/24`);
  const [, addr, p] = m as unknown as [string, string, string];
  const prefix = Number(p);
  let family: 4 | 6, bits: number, value: bigint;
  if (isIPv4(addr)) { family = 4; bits = 32; value = v4ToBig(addr); }
  else if (isIPv6(addr) && !addr.includes('%')) { family = 6; bits = 128; value = v6ToBig(addr); }
  else throw new Error(`${JSON.stringify(addr)} is not an IPv4 or IPv6 address`);
  if (prefix > bits) throw new Error(`prefix /${prefix} is longer than an IPv${family} address (${bits} bits)`);
  const hostBits = BigInt(bits - prefix);
  const size = 1n << hostBits;
  const base = (value >> hostBits) << hostBits;
  if (base !== value) throw new Error(`${text} has host bits set: the block is ${family === 4 ? bigToV4(base) : bigToV6(base)}/${prefix}`);
  const first = family === 4 ? (prefix <= 30 ? 1n : 0n) : (prefix < 128 ? 1n : 0n);
  return { family, base, prefix, size, first, text: `${family === 4 ? bigToV4(base) : bigToV6(base)}/${prefix}` };
}

/** How many addresses the block gives (see the file comment for which are left out). */
export function usableCount(b: AddressBlock): bigint {
  const broadcast = b.family === 4 && b.prefix <= 30 ? 1n : 0n;
  return b.size - b.first - broadcast;
}

/** The usable address number `n` (from 0) of the block, as text; undefined past the last. */
export function nthAddress(b: AddressBlock, n: bigint | number): string | undefined {
  const i = BigInt(n);
  if (i < 0n || i >= usableCount(b)) return undefined;
  const v = b.base + b.first + i;
  return b.family === 4 ? bigToV4(v) : bigToV6(v);
}

/** The number of a usable address of the block (the inverse of {@link nthAddress}); undefined if it is not one. */
export function addressIndex(b: AddressBlock, address: string): bigint | undefined {
  let v: bigint;
  if (b.family === 4 && isIPv4(address)) v = v4ToBig(address);
  else if (b.family === 6 && isIPv6(address)) v = v6ToBig(address);
  else return undefined;
  const i = v - b.base - b.first;
  return i >= 0n && i < usableCount(b) ? i : undefined;
}
