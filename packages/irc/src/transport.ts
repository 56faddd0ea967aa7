/**
 * irc-framework's TCP/TLS transport for the listening connection. Two things differ from
 * irc-framework's own (src/transports/net.js):
 * - each line is read with the server's fallback encoding when it is not UTF-8
 *   (convert/encoding.ts): irc-framework reads every line with one fixed encoding, so a channel
 *   with one Latin-1 user shows U+FFFD on Matrix;
 * - with `holdLogin`, a plaintext connection's server password (and the NICK and USER after it)
 *   waits for the server's answer to `CAP LS`, so that a server asking for TLS there (STS) never
 *   hears it in plaintext (sts.ts LoginHold). irc-framework writes PASS, NICK and USER at once;
 * - a line holding CR, LF or NUL is not written at all (see {@link breaksLine});
 * - a line read past 16 KiB is dropped whole (irc-framework's buffer grows without bound).
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Logger } from '@trestle/core';
import { lineDecoder } from './convert/encoding.js';
import { LoginHold, NO_CAP_REPLIES } from './sts.js';

interface NetTransportBase {
  incoming_buffer: Buffer;
  options: { tls?: boolean; password?: string };
  socket: Socket | null;
  isConnected(): boolean;
  writeLine(line: string, cb?: () => void): void;
  onSocketFullyConnected(): void;
  onSocketClose(): void;
  emit(event: string, ...args: unknown[]): boolean;
}
type NetTransportClass = new (options: Record<string, unknown>) => NetTransportBase;

const require = createRequire(import.meta.url);
// irc-framework's package has no exports map: its transport is loaded by path, as its default transport does
const NetTransport = require('irc-framework/src/transports/net.js') as NetTransportClass;

/** The longest line read (tags included: IRCv3 allows 8191 bytes of them, plus 512 of message); past it the line is dropped. */
const MAX_LINE_BYTES = 16 * 1024;

/** The numeric of a line (`:srv 421 * CAP :Unknown command` → 421), or undefined. */
const numeric = (line: string): string | undefined => /^(?:@\S+ )?(?::\S+ )?(\d{3}) /.exec(line)?.[1];

/**
 * Would this line be more than one line on the wire? CR and LF end a line (servers split on either),
 * so what follows one is a command of its own; NUL ends it early on many servers. irc-framework
 * strips none of them from what its calls (raw, join, whois, part, quit...) are given.
 */
const breaksLine = (line: string): boolean => /[\r\n\0]/.test(line);

/**
 * A transport class for irc-framework's `transport` option, decoding lines as `lineDecoder(fallback)`;
 * with `holdLogin` (STS is followed), a plaintext connection with a server password holds its login.
 * `log` is told of a line refused for holding CR, LF or NUL.
 */
export function transportWithFallback(fallback: string | undefined, holdLogin: boolean, log: Logger): NetTransportClass {
  const decode = lineDecoder(fallback);
  return class FallbackTransport extends NetTransport {
    private readonly loginHold = new LoginHold();

    override onSocketFullyConnected(): void {
      if (holdLogin && !this.options.tls && this.options.password) this.loginHold.begin();
      super.onSocketFullyConnected(); // irc-framework writes CAP LS, PASS, NICK and USER here
    }

    override writeLine(line: string, cb?: () => void): void {
      // Every line irc-framework writes comes through here, so this one check covers all its calls,
      // whatever their callers forgot. A line that breaksLine() is refused whole, not cut at the
      // break: what comes before it is not necessarily what was meant either (a key, a reason, a
      // message cut short), and every caller should have refused or cleaned its input already, so it
      // is a fault to log, not to paper over. Only the command is logged: the rest may be a password
      // or a message. The callback still runs, as irc-framework's own does when it cannot write:
      // irc-framework closes the socket in the callback of its QUIT.
      if (breaksLine(line)) {
        log.warn('refused to write an IRC line holding CR, LF or NUL (a second line could be smuggled in)', { command: line.split(/\s/, 1)[0] });
        if (cb) process.nextTick(cb);
        return;
      }
      if (line.startsWith('CAP LS') || !this.loginHold.hold(() => super.writeLine(line, cb))) {
        super.writeLine(line, cb);
        return;
      }
      // irc-framework's answer to the last CAP LS line: its 'cap ls' event (where an upgrade policy
      // closes the socket) comes right after, in the same handler; the login goes once that has run
      if (/^CAP (?:REQ|END)\b/.test(line)) {
        setImmediate(() => {
          if (this.socket && !this.socket.destroyed && this.isConnected()) this.loginHold.release();
          else this.loginHold.drop();
        });
      }
    }

    /** The rest of an over-long line is being skipped, up to its end (see {@link MAX_LINE_BYTES}). */
    private discarding = false;

    onSocketData(data: Buffer): void {
      let buf = this.incoming_buffer.length ? Buffer.concat([this.incoming_buffer, data]) : data;
      if (this.discarding) {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) { this.incoming_buffer = Buffer.alloc(0); return; }
        // its end is not a line of its own: whoever wrote the long line chose those bytes
        this.discarding = false;
        buf = buf.subarray(nl + 1);
      }
      let start = 0;
      for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        // as irc-framework's own: the line with its line ending (its parser strips it)
        const line = decode(buf, start, nl + 1);
        if (this.loginHold.holding && NO_CAP_REPLIES.has(numeric(line) ?? '')) this.loginHold.release();
        this.emit('line', line);
        start = nl + 1;
      }
      this.incoming_buffer = buf.subarray(start);
      if (this.incoming_buffer.length > MAX_LINE_BYTES) {
        // no server sends such a line (512 bytes, 8191 of tags): kept, a stream without a line end
        // would grow without bound, copied again on every read
        log.warn('dropping an over-long line from the IRC server', { bytes: this.incoming_buffer.length });
        this.incoming_buffer = Buffer.alloc(0);
        this.discarding = true;
      }
    }

    override onSocketClose(): void {
      this.discarding = false; // the next connection starts at a line's start
      this.loginHold.drop();
      super.onSocketClose();
    }
  };
}
