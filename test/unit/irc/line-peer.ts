import { createServer, type Server, type Socket } from 'node:net';

/**
 * A scripted TCP peer on 127.0.0.1 for IRC connection tests: each connection's lines (CRLF
 * stripped) go to the handler `onConnection` returns for it. Resolves once listening.
 */
export async function linePeer(onConnection: (s: Socket) => (line: string) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    const onLine = onConnection(s);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        onLine(line);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}
