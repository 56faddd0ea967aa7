/**
 * irc-framework's TCP/TLS transport for the listening connection, reading each line with the
 * server's fallback encoding when it is not UTF-8 (convert/encoding.ts). irc-framework itself reads
 * every line with one fixed encoding, so a channel with one Latin-1 user shows U+FFFD on Matrix.
 * Only the line decoding differs from irc-framework's own transport (src/transports/net.js).
 */
import { createRequire } from 'node:module';
import { lineDecoder } from './convert/encoding.js';

interface NetTransportBase {
  incoming_buffer: Buffer;
  emit(event: string, ...args: unknown[]): boolean;
}
type NetTransportClass = new (options: Record<string, unknown>) => NetTransportBase;

const require = createRequire(import.meta.url);
// irc-framework's package has no exports map: its transport is loaded by path, as its default transport does
const NetTransport = require('irc-framework/src/transports/net.js') as NetTransportClass;

/** A transport class for irc-framework's `transport` option, decoding lines as `lineDecoder(fallback)`. */
export function transportWithFallback(fallback: string | undefined): NetTransportClass {
  const decode = lineDecoder(fallback);
  return class FallbackTransport extends NetTransport {
    onSocketData(data: Buffer): void {
      const buf = this.incoming_buffer.length ? Buffer.concat([this.incoming_buffer, data]) : data;
      let start = 0;
      for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        // as irc-framework's own: the line with its line ending (its parser strips it)
        this.emit('line', decode(buf, start, nl + 1));
        start = nl + 1;
      }
      this.incoming_buffer = buf.subarray(start);
    }
  };
}
