import { createServer, type Server, type Socket } from 'node:net';

/**
 * A scripted TCP peer on 127.0.0.1 for IRC connection tests: each connection's lines (CRLF
 * stripped) go to the handler `onConnection` returns for it. Resolves once listening.
 */
export async function linePeer(
  onConnection: (s: Socket) => (line: string) => void, opts: { allowHalfOpen?: boolean } = {},
): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (s) => {
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

/**
 * The server's side of registering a client that gets none of the capabilities it asks for: the
 * CAP LS answered, each CAP REQ refused, 001 at CAP END. The function returned answers the lines of
 * registration itself and says false for them; true for a line after it (the caller's).
 */
export function registeredWithoutCaps(s: Socket): (line: string) => boolean {
  let registered = false;
  return (line) => {
    if (registered) return true;
    if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :multi-prefix\r\n');
    else if (line.startsWith('CAP REQ')) s.write(`:srv CAP * NAK :${line.slice(9)}\r\n`);
    else if (line === 'CAP END') { registered = true; s.write(':srv 001 me :Welcome\r\n'); }
    return false;
  };
}

/**
 * Like {@link registeredWithoutCaps}, for a peer serving several connections under their own nicks:
 * each is welcomed (001) as the nick it asked for. `line` answers the registration and says whether
 * a line came after it; `nick()` is the connection's nick.
 */
export function registersAsAsked(s: Socket): { line: (line: string) => boolean; nick: () => string } {
  let nick = '';
  let registered = false;
  return {
    nick: () => nick,
    line: (line) => {
      if (line.startsWith('NICK ')) nick = line.slice(5);
      if (registered) return true;
      if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :\r\n');
      else if (line === 'CAP END') { registered = true; s.write(`:srv 001 ${nick} :Welcome\r\n`); }
      return false;
    },
  };
}
