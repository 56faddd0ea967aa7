import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { identAnswer, IdentServer, parseIdentQuery } from '../../../packages/irc/src/identd.js';

describe('ident (RFC 1413) queries', () => {
  it.each([
    ['6193, 23', { local: 6193, remote: 23 }],
    ['6193 , 23', { local: 6193, remote: 23 }],
    ['6193,23', { local: 6193, remote: 23 }],
    ['  6193 ,\t23  ', { local: 6193, remote: 23 }],
    ['1, 65535', { local: 1, remote: 65535 }],
  ])('reads %j as our port and the querier\'s port', (line, ports) => {
    expect(parseIdentQuery(line)).toEqual(ports);
  });

  it.each([
    '', 'hello', '6193', '6193,', ', 23', '6193 23', '6193, 23, 24', '0, 23', '6193, 0', '65536, 23', '6193, 99999',
    '-1, 23', '61.93, 23', '0x10, 23', '6193, 23 : USERID', '\u0661\u0662, 23', '123456, 1',
  ])('refuses %j', (line) => {
    expect(parseIdentQuery(line)).toBeUndefined();
  });

  const owners = new Map([['40000,6667', 'alice'], ['40001,6667', 'we:ird\r\nuser']]);
  const owner = (local: number, remote: number): string | undefined => owners.get(`${local},${remote}`);

  it('answers the owner of a known connection, the ports in the order asked', () => {
    expect(identAnswer('40000 , 6667', owner)).toBe('40000, 6667 : USERID : UNIX : alice');
  });

  it('answers NO-USER for a connection it does not know (or the reverse of a known one)', () => {
    expect(identAnswer('40002, 6667', owner)).toBe('40002, 6667 : ERROR : NO-USER');
    expect(identAnswer('6667, 40000', owner)).toBe('6667, 40000 : ERROR : NO-USER');
  });

  it('answers INVALID-PORT for ports out of range, echoing numbers but never other bytes', () => {
    expect(identAnswer('70000, 6667', owner)).toBe('70000, 6667 : ERROR : INVALID-PORT');
    expect(identAnswer('0, 0', owner)).toBe('0, 0 : ERROR : INVALID-PORT');
    expect(identAnswer('GET / HTTP/1.0', owner)).toBe('0, 0 : ERROR : INVALID-PORT');
    expect(identAnswer('40000, 6667 : USERID : UNIX : root', owner)).toBe('0, 0 : ERROR : INVALID-PORT');
  });

  it('never lets a username break the answer line or its fields', () => {
    expect(identAnswer('40001, 6667', owner)).toBe('40001, 6667 : USERID : UNIX : weirduser');
  });
});

describe('IdentServer owners of connections with source addresses of their own (addressBlock)', () => {
  it('tells apart two connections with the same ports by the address the query arrives at', async () => {
    const peer = createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const port = (peer.address() as { port: number }).port;
    const open = (localAddress: string, localPort?: number): Promise<Socket> => new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, localAddress, ...(localPort ? { localPort } : {}) }, () => resolve(s));
      s.on('error', reject);
    });
    const ident = new IdentServer({ port: 0, log: silentLogger });
    try {
      const a = await open('127.0.1.2');
      const b = await open('127.0.1.3', a.localPort); // a port is only unique per address: the same one, from another
      expect(b.localPort).toBe(a.localPort);
      ident.register(a, 'alice');
      ident.register(b, 'bob');
      const local = a.localPort!;
      expect(ident.owner(local, '127.0.0.1', port, '127.0.1.2')).toBe('alice');
      expect(ident.owner(local, '::ffff:127.0.0.1', port, '::ffff:127.0.1.3')).toBe('bob');
      expect(ident.owner(local, '127.0.0.1', port, '127.0.0.1')).toBeUndefined(); // which of the two? neither
      expect(ident.owner(local, '127.0.0.2', port, '127.0.1.2')).toBeUndefined(); // another host asks
      b.destroy();
      await new Promise((r) => b.once('close', r));
      // alone under its ports, a connection answers at any address (a host behind NAT is asked at its public one)
      expect(ident.owner(local, '127.0.0.1', port, '127.0.0.1')).toBe('alice');
      expect(ident.size).toBe(1);
      a.destroy();
    } finally {
      peer.close();
    }
  });
});
