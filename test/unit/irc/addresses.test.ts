import { describe, expect, it } from 'vitest';
import { addressIndex, nthAddress, parseBlock, usableCount } from '../../../packages/irc/src/addresses.js';

describe('address blocks (addressBlock)', () => {
  it.each([
    ['127.0.1.0/24', 4, 254n, '127.0.1.1', '127.0.1.254'],
    ['10.0.0.0/30', 4, 2n, '10.0.0.1', '10.0.0.2'],
    ['192.0.2.4/31', 4, 2n, '192.0.2.4', '192.0.2.5'], // RFC 3021: no network or broadcast address
    ['192.0.2.7/32', 4, 1n, '192.0.2.7', '192.0.2.7'],
    ['2001:db8:1::/64', 6, 2n ** 64n - 1n, '2001:db8:1::1', '2001:db8:1:0:ffff:ffff:ffff:ffff'],
    ['2001:DB8::/126', 6, 3n, '2001:db8::1', '2001:db8::3'],
    ['2001:db8::5/128', 6, 1n, '2001:db8::5', '2001:db8::5'],
  ])('%s: IPv%i, %i usable, from %s to %s', (text, family, count, first, last) => {
    const b = parseBlock(text);
    expect(b.family).toBe(family);
    expect(usableCount(b)).toBe(count);
    expect(nthAddress(b, 0)).toBe(first);
    expect(nthAddress(b, count - 1n)).toBe(last);
    expect(nthAddress(b, count)).toBeUndefined();
    expect(nthAddress(b, -1)).toBeUndefined();
  });

  it('never gives an IPv4 block\'s network or broadcast address', () => {
    const b = parseBlock('127.0.1.0/24');
    const all = Array.from({ length: 254 }, (_, i) => nthAddress(b, i));
    expect(new Set(all).size).toBe(254);
    expect(all).not.toContain('127.0.1.0');
    expect(all).not.toContain('127.0.1.255');
    expect(addressIndex(b, '127.0.1.0')).toBeUndefined();
    expect(addressIndex(b, '127.0.1.255')).toBeUndefined();
  });

  it('writes IPv6 addresses canonically (RFC 5952) and reads any spelling back to the same number', () => {
    const b = parseBlock('2001:DB8:0:0:1:0:0:0/80');
    expect(b.text).toBe('2001:db8:0:0:1::/80'); // the longest run of zeros is shortened
    expect(nthAddress(b, 0)).toBe('2001:db8::1:0:0:1'); // of two equally long runs, the first
    expect(nthAddress(b, 0xffff)).toBe('2001:db8::1:0:1:0');
    expect(addressIndex(b, '2001:0DB8:0000:0000:0001:0000:0001:0000')).toBe(0xffffn);
    expect(nthAddress(parseBlock('::/96'), 0x7f000000)).toBe('::7f00:1'); // ::/96 skips ::, so number n is :: + n + 1
    expect(addressIndex(parseBlock('::ffff:0:0/96'), '::ffff:127.0.0.2')).toBe(0x7f000001n);
  });

  it('maps addresses back to their numbers, and not those outside the block or of the other family', () => {
    const b = parseBlock('10.1.0.0/16');
    expect(nthAddress(b, 300)).toBe('10.1.1.45');
    expect(addressIndex(b, '10.1.1.45')).toBe(300n);
    expect(addressIndex(b, '10.2.0.1')).toBeUndefined();
    expect(addressIndex(b, '::1')).toBeUndefined();
    expect(addressIndex(parseBlock('2001:db8::/64'), '10.1.0.1')).toBeUndefined();
  });

  it.each([
    ['127.0.1.0', /slash and a prefix/],
    ['127.0.1.0/', /slash and a prefix/],
    ['127.0.1.0/33', /longer than an IPv4 address/],
    ['2001:db8::/129', /longer than an IPv6 address/],
    ['127.0.1.1/24', /host bits set: the block is 127\.0\.1\.0\/24/],
    ['2001:db8::1/64', /host bits set: the block is 2001:db8::\/64/],
    ['example.org/24', /not an IPv4 or IPv6 address/],
    ['fe80::%eth0/64', /not an IPv4 or IPv6 address/],
    ['300.0.0.0/8', /not an IPv4 or IPv6 address/],
  ])('refuses %j with a clear error', (text, why) => {
    expect(() => parseBlock(text)).toThrow(why);
  });
});
