import { describe, expect, it } from 'vitest';
import { ChannelModes, type ModeChange, type RoomSettingsChange } from '../../../packages/irc/src/modes.js';

const POWERS = { q: 100, a: 75, o: 50, h: 25, v: 1 };
const m = (spec: string): ModeChange[] => {
  // '+mo nick' style: letters, then params for those that take one (k, b, and membership modes)
  const [letters, ...params] = spec.split(' ');
  const out: ModeChange[] = [];
  let sign = '+';
  for (const ch of letters!) {
    if (ch === '+' || ch === '-') { sign = ch; continue; }
    const takes = 'qaohvb'.includes(ch) || (ch === 'k');
    out.push({ mode: `${sign}${ch}`, ...(takes ? { param: params.shift() ?? '*' } : {}) });
  }
  return out;
};

describe('ChannelModes.apply: one MODE line → ranks and room settings together', () => {
  it.each<[string, string[], string, { ranked: string[]; settings?: RoomSettingsChange }]>([
    ['moderated', [], '+m', { ranked: [], settings: { sendLevel: 1 } }],
    ['moderated again is no change', ['+m'], '+m', { ranked: [] }],
    ['unmoderated goes back', ['+m'], '-m', { ranked: [], settings: { sendLevel: null } }],
    ['invite only', [], '+i', { ranked: [], settings: { inviteOnly: true } }],
    ['a key is invite only too', [], '+k sekrit', { ranked: [], settings: { inviteOnly: true } }],
    ['-i with a key left stays invite only', ['+ik sekrit'], '-i', { ranked: [] }],
    ['-k with +i left stays invite only', ['+ik sekrit'], '-k *', { ranked: [] }],
    ['-ik opens the room', ['+ik sekrit'], '-ik *', { ranked: [], settings: { inviteOnly: false } }],
    ['ranks and +m in one line', [], '+mov pat quinn', { ranked: ['pat', 'quinn'], settings: { sendLevel: 1 } }],
    ['ranks only', [], '+o pat', { ranked: ['pat'] }],
    ['bans and other flags are nothing to the room', [], '+bnt x!*@*', { ranked: [] }],
    ['+m and -m in one line cancel out', [], '+m-m', { ranked: [] }],
  ])('%s', (_name, before, line, expected) => {
    const modes = new ChannelModes(POWERS);
    for (const b of before) modes.apply('#c', m(b));
    expect(modes.apply('#C', m(line))).toEqual(expected);
  });

  it('tracks membership modes by nick, case-insensitively, and levels take the highest', () => {
    const modes = new ChannelModes(POWERS);
    modes.apply('#c', m('+ov Pat Pat'));
    expect(modes.levelOf('#C', 'pat')).toBe(50);
    expect(modes.canKick('#c', 'PAT')).toBe(true);
    modes.apply('#c', m('-o pat'));
    expect(modes.levelOf('#c', 'pat')).toBe(1);
    expect(modes.canKick('#c', 'pat')).toBe(false);
    modes.apply('#c', m('+h pat'));
    expect(modes.canKick('#c', 'pat')).toBe(true); // half-ops may kick
  });

  it('forgets modes on part and quit, and follows nick changes', () => {
    const modes = new ChannelModes(POWERS);
    modes.apply('#a', m('+o pat'));
    modes.apply('#b', m('+o pat'));
    modes.left('#a', 'pat');
    expect(modes.levelOf('#a', 'pat')).toBe(0);
    expect(modes.levelOf('#b', 'pat')).toBe(50);
    modes.renamed('pat', 'patricia');
    expect(modes.levelOf('#b', 'pat')).toBe(0);
    expect(modes.levelOf('#b', 'patricia')).toBe(50);
    modes.quit('patricia');
    expect(modes.levelOf('#b', 'patricia')).toBe(0);
  });

  it('voice is the level to talk in a moderated channel; without voice configured, the lowest level', () => {
    expect(new ChannelModes(POWERS).moderatedSendLevel).toBe(1);
    expect(new ChannelModes({ o: 50, h: 20 }).moderatedSendLevel).toBe(20);
    expect(new ChannelModes({ o: 50, v: 10 }).apply('#c', m('+m'))).toEqual({ ranked: [], settings: { sendLevel: 10 } });
    expect(new ChannelModes({}).moderatedSendLevel).toBe(1);
  });
});

describe('ChannelModes.replace: RPL_CHANNELMODEIS', () => {
  it('reports the whole state the first time, then only changes', () => {
    const modes = new ChannelModes(POWERS);
    expect(modes.replace('#c', m('+Cnt'))).toEqual({ sendLevel: null, inviteOnly: false });
    expect(modes.replace('#c', m('+Cnt'))).toBeUndefined();
    expect(modes.replace('#c', m('+Cimnt'))).toEqual({ sendLevel: 1, inviteOnly: true });
    modes.apply('#c', m('-m'));
    expect(modes.flagsOf('#c')).toEqual(['i']);
  });

  it('a resync (a room just linked) reports everything again; a forgotten channel starts over', () => {
    const modes = new ChannelModes(POWERS);
    modes.replace('#c', m('+knt sekrit'));
    modes.resync('#c');
    expect(modes.replace('#c', m('+knt sekrit'))).toEqual({ sendLevel: null, inviteOnly: true });
    modes.forgetAll();
    expect(modes.replace('#c', m('+mnt'))).toEqual({ sendLevel: 1, inviteOnly: false });
  });
});

describe('ChannelModes.names', () => {
  it('replaces membership modes from NAMES and lists who has or had a rank', () => {
    const modes = new ChannelModes(POWERS);
    modes.apply('#c', m('+o old'));
    const ranked = modes.names('#c', [{ nick: 'pat', modes: ['o'] }, { nick: 'old', modes: [] }, { nick: 'plain' }, { nick: 'x', modes: ['Z'] }]);
    expect(ranked).toEqual(['pat', 'old']);
    expect(modes.levelOf('#c', 'old')).toBe(0);
    expect(modes.levelOf('#c', 'pat')).toBe(50);
  });
});
