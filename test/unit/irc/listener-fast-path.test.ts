// The listener's fast path (plainChannelMessage) must make of a line exactly the event irc-framework
// makes of it, or leave the line to irc-framework. Each line is also fed to a real irc-framework
// client, and the two events are compared field by field. Lines end in CR LF, as irc-framework's
// transport hands them over.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { plainChannelMessage } from '../../../packages/irc/src/listen.js';

const IRC = createRequire(new URL('../../../packages/irc/package.json', import.meta.url))('irc-framework');

/** What irc-framework emits for one line from the server: the event's name and the fields the listener uses. */
function ircFramework(line: string): { event: string; fields: Record<string, unknown> } | undefined {
  const client = new IRC.Client();
  let got: { event: string; fields: Record<string, unknown> } | undefined;
  for (const event of ['privmsg', 'notice', 'action', 'ctcp request', 'ctcp response']) {
    client.on(event, (e: Record<string, unknown>) => {
      got = { event, fields: { nick: e['nick'], target: e['target'], message: e['message'], tags: e['tags'], ...(e['time'] ? { time: e['time'] } : {}) } };
    });
  }
  client.connection.addReadBuffer(line);
  return got;
}

/** The line as the transport hands it over: with its line ending (CR LF unless the row has its own). */
const wire = (line: string): string => (line.endsWith('\n') ? line : `${line}\r\n`);

const EVENT_OF: Record<string, string> = { 'm.text': 'privmsg', 'm.notice': 'notice', 'm.emote': 'action' };

describe('plainChannelMessage: the same event as irc-framework, or none', () => {
  it.each<[string, string, string]>([
    ['a message with server-time, msgid and a reply tag', '@time=2026-01-02T03:04:05.678Z;msgid=abc;+draft/reply=xyz :bob!b@host PRIVMSG #chan :hello there', 'm.text'],
    ['escaped tag values', '@msgid=a\\sb\\:c\\\\d :bob!b@host PRIVMSG #chan :hi', 'm.text'],
    ['a tag without a value', '@+typing;msgid=m1 :bob!b@host PRIVMSG #chan :hi', 'm.text'],
    ['an emote', ':bob!b@host PRIVMSG #chan :\x01ACTION waves at everyone\x01', 'm.emote'],
    ['a notice to a & channel', ':bob!b@host NOTICE &local :a notice', 'm.notice'],
    ['a prefix with no user@host', ':bob PRIVMSG #chan :short prefix', 'm.text'],
    ['a last parameter without a colon', ':bob!b@host PRIVMSG #chan word', 'm.text'],
    ['an empty message', ':bob!b@host PRIVMSG #chan :', 'm.text'],
    ['a bare LF ending', ':bob!b@host PRIVMSG #chan :ends in LF only\n', 'm.text'],
    ['colons and spaces inside the text', ':bob!b@host PRIVMSG #chan :a: b :c  d ', 'm.text'],
    ['UTF-8 and formatting codes', ':bøb!b@host PRIVMSG #chan :\x02bold\x02 ünïcødé 🎉', 'm.text'],
  ])('takes %s', (_name, line, msgtype) => {
    const ours = plainChannelMessage(wire(line));
    const theirs = ircFramework(wire(line));
    expect(ours?.msgtype).toBe(msgtype);
    expect(theirs?.event).toBe(EVENT_OF[msgtype]);
    const { msgtype: _m, ...fields } = ours!;
    expect(fields).toEqual(theirs!.fields);
  });

  it.each<[string, string]>([
    ['another CTCP (left for irc-framework to answer)', ':bob!b@host PRIVMSG #chan :\x01PING 123\x01'],
    ['an ACTION without its closing \\x01', ':bob!b@host PRIVMSG #chan :\x01ACTION no end'],
    ['a CTCP reply in a notice', ':bob!b@host NOTICE #chan :\x01ACTION waves\x01'],
    ['a line in a batch (multiline, history)', '@batch=ml1 :bob!b@host PRIVMSG #chan :part of a batch'],
    ['a STATUSMSG target', ':bob!b@host PRIVMSG @#chan :ops only'],
    ['a private message', ':bob!b@host PRIVMSG alice :hi'],
    ['a tag message', '@+draft/react=👍;+draft/reply=abc :bob!b@host TAGMSG #chan'],
    ['a JOIN', ':bob!b@host JOIN #chan'],
    ['a numeric that names a channel', ':irc.example 332 listener #chan :the topic'],
  ])('leaves %s', (_name, line) => {
    expect(plainChannelMessage(wire(line))).toBeUndefined();
  });
});
