/** The parts of irc-framework (which ships no types) that Trestle uses. */
declare module 'irc-framework' {
  import { EventEmitter } from 'node:events';

  class IrcMessage {
    constructor(command: string, ...params: string[]);
    tags: Record<string, string>;
  }

  class Client extends EventEmitter {
    constructor(options?: Record<string, unknown>);
    connect(options?: Record<string, unknown>): void;
    requestCap(cap: string | string[]): void;
    changeNick(nick: string): void;
    say(target: string, message: string, tags?: Record<string, string>): void;
    notice(target: string, message: string, tags?: Record<string, string>): void;
    tagmsg(target: string, tags?: Record<string, string>): void;
    join(channel: string, key?: string): void;
    part(channel: string, message?: string): void;
    quit(message?: string): void;
    raw(...args: unknown[]): void;
    setTopic(channel: string, topic: string): void;
    whois(nick: string, cb?: (event: Record<string, unknown>) => void): void;
    ctcpResponse(target: string, type: string, ...params: string[]): void;
    readonly Message: typeof IrcMessage;
    user: { nick: string; username: string; host: string };
    network: {
      name?: string;
      options: Record<string, string | undefined>;
      cap: { enabled: string[]; isEnabled(cap: string): boolean };
      supports(feature: string): string | boolean | undefined;
    };
    /** `end(data, hadError)`: with hadError the socket is destroyed at once and the close is not taken as requested. */
    connection: { end(data?: string, hadError?: boolean): void; connected: boolean };
    connected: boolean;
  }

  const IRC: { Client: typeof Client; Message: typeof IrcMessage };
  export default IRC;
  export { Client, IrcMessage as Message };
}
