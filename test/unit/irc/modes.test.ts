import { describe, expect, it } from 'vitest';
import { ChannelModes, modeChangesForLevel, modeMeanings, type ModeChange, type RoomSettingsChange, type ServerModeInfo } from '../../../packages/irc/src/modes.js';

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
    ['secret keeps the portal unlisted', [], '+s', { ranked: [], settings: { secret: true } }],
    ['-s with +p left stays unlisted', ['+sp'], '-s', { ranked: [] }],
    ['-sp may list it again', ['+sp'], '-sp', { ranked: [], settings: { secret: false } }],
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
    expect(modes.replace('#c', m('+Cnt'))).toEqual({ sendLevel: null, inviteOnly: false, secret: false });
    expect(modes.replace('#c', m('+Cnt'))).toBeUndefined();
    expect(modes.replace('#c', m('+Cimnt'))).toEqual({ sendLevel: 1, inviteOnly: true });
    modes.apply('#c', m('-m'));
    expect(modes.flagsOf('#c')).toEqual(['i']);
    expect(modes.replace('#c', m('+inst'))).toEqual({ secret: true });
    expect(modes.replace('#c', m('+inpt'))).toBeUndefined(); // private is as unlisted as secret
    expect(modes.replace('#c', m('+int'))).toEqual({ secret: false });
  });

  it('a resync (a room just linked) reports everything again; a forgotten channel starts over', () => {
    const modes = new ChannelModes(POWERS);
    modes.replace('#c', m('+knt sekrit'));
    modes.resync('#c');
    expect(modes.replace('#c', m('+knt sekrit'))).toEqual({ sendLevel: null, inviteOnly: true, secret: false });
    modes.forgetAll();
    expect(modes.replace('#c', m('+mnst'))).toEqual({ sendLevel: 1, inviteOnly: false, secret: true });
  });
});

describe('ChannelModes.namesComplete: may a NAMES be taken for everyone in the channel?', () => {
  it('not known before the channel modes, false in auditorium mode (+u, as set or as changed), true otherwise', () => {
    const modes = new ChannelModes(POWERS);
    expect(modes.namesComplete('#c')).toBeUndefined();
    modes.apply('#c', m('+o op')); // a MODE line is not the whole mode string
    expect(modes.namesComplete('#c')).toBeUndefined();
    modes.replace('#c', m('+nt'));
    expect(modes.namesComplete('#C')).toBe(true);
    modes.apply('#c', m('+u'));
    expect(modes.namesComplete('#c')).toBe(false);
    modes.apply('#c', m('-u'));
    expect(modes.namesComplete('#c')).toBe(true);
    modes.replace('#c', m('+ntu'));
    expect(modes.namesComplete('#c')).toBe(false);
    modes.replace('#c', m('+nt'));
    expect(modes.namesComplete('#c')).toBe(true);
    modes.forget('#c');
    expect(modes.namesComplete('#c')).toBeUndefined();
  });
});

const SOLANUM: ServerModeInfo = { prefix: ['o', 'v'], chanmodes: ['eIbq', 'k', 'flj', 'CFLMPQRSTcgimnprstuz'], software: 'solanum-1.0-dev' };
const ERGO: ServerModeInfo = { prefix: ['q', 'a', 'o', 'h', 'v'], chanmodes: ['Ibe', 'k', 'fl', 'CEMRUimnstu'], software: 'ergo-2.14.0' };
const INSPIRCD: ServerModeInfo = { prefix: ['o', 'v'], chanmodes: ['Xbeg', 'k', 'Ffjl', 'DMNRSTcimnprstu'], software: 'InspIRCd-3' };

describe('modeMeanings: what mode letters mean on a server', () => {
  it.each<[string, ServerModeInfo, string, boolean]>([
    ['nothing known: every modePowers key is a rank', {}, 'qaohv', true],
    ['solanum: op and voice', SOLANUM, 'ov', true],
    ['solanum: q is a quiet, a and h do not exist', SOLANUM, 'qah', false],
    ['ergo: founder to voice', ERGO, 'qaohv', true],
    ['a list mode is never a rank, PREFIX or not', { chanmodes: ['beIq', '', '', ''] }, 'q', false],
    ['a PREFIX letter without a power is no rank', ERGO, 'Y', false],
    ['an empty PREFIX: no ranks at all', { prefix: [] }, 'o', false],
  ])('%s', (_name, info, letters, rank) => {
    const { isRank } = modeMeanings(info, POWERS);
    for (const l of letters) expect(isRank(l)).toBe(rank);
  });

  it.each<[string, ServerModeInfo, boolean]>([
    ['nothing known: auditorium, as before', {}, true],
    ['ergo', ERGO, true],
    ['InspIRCd', INSPIRCD, true],
    ['solanum: +u is "unfiltered"', SOLANUM, false],
    ['+u takes a parameter there: not a flag', { chanmodes: ['b', 'k', 'lu', 'imnt'] }, false],
    ['no +u at all', { chanmodes: ['b', 'k', 'l', 'imnt'] }, false],
  ])('+u as auditorium: %s', (_name, info, auditorium) => {
    expect(modeMeanings(info, POWERS).auditorium).toBe(auditorium);
  });

  it('ChannelModes reads them at each line: solanum +q is no rank, +u no auditorium', () => {
    let info: ServerModeInfo = {};
    const modes = new ChannelModes(POWERS, () => info);
    info = SOLANUM;
    expect(modes.apply('#c', m('+qo *!*@spam pat'))).toEqual({ ranked: ['pat'] });
    expect(modes.levelOf('#c', '*!*@spam')).toBe(0);
    modes.replace('#c', m('+ntu'));
    expect(modes.namesComplete('#c')).toBe(true);
    expect(modes.names('#c', [{ nick: 'x', modes: ['q'] }])).toEqual([]);
    info = ERGO;
    modes.apply('#c', m('+u'));
    expect(modes.namesComplete('#c')).toBe(false);
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

describe('ChannelModes bans: what a Matrix unban lifts', () => {
  it('tracks +b/-b and the ban list, and finds the masks on one nick only', () => {
    const modes = new ChannelModes(POWERS);
    modes.apply('#c', m('+b Vic!*@*'));
    modes.apply('#c', m('+b *!*@bad.host'));
    modes.apply('#c', m('+b vicky!*@*'));
    expect(modes.bansOn('#C', 'VIC')).toEqual(['Vic!*@*']); // as the server wrote it
    modes.apply('#c', m('-b vic!*@*'));
    expect(modes.bansOn('#c', 'vic')).toEqual([]);
    modes.banList('#c', ['vic!~u@host', 'other!*@*']);
    expect(modes.bansOn('#c', 'vic')).toEqual(['vic!~u@host']);
    expect(modes.bansOn('#c', 'vicky')).toEqual([]); // the list replaced what MODE lines had said
    expect(modes.bansOn('#elsewhere', 'vic')).toEqual([]);
  });
});

describe('modeChangesForLevel: a Matrix power level → membership modes', () => {
  const ALL = ['q', 'a', 'o', 'h', 'v'];
  it.each<[string, number, string[], number, string[], string[]]>([
    // name, level, held, setter's level, changes, beyond reach
    ['50 → op', 50, [], 50, ['+o'], []],
    ['10 → voice (the highest mode not above the level)', 10, [], 50, ['+v'], []],
    ['already op: nothing', 50, ['o'], 50, [], []],
    ['op to voice: voice given, op taken', 1, ['o'], 50, ['+v', '-o'], []],
    ['0 takes every rank', 0, ['o', 'v'], 50, ['-o', '-v'], []],
    ['0 with no rank: nothing', 0, [], 50, [], []],
    ['voice kept when made op', 50, ['v'], 50, ['+o'], []],
    ['100 by an op: op, and founder is out of reach', 100, [], 50, ['+o'], ['q']],
    ['100 by a founder: founder', 100, [], 100, ['+q'], []],
    ['a founder already: nothing to add or report', 100, ['q'], 50, [], []],
    ['taking founder is beyond an op', 0, ['q'], 50, [], ['q']],
  ])('%s', (_name, level, held, setterLevel, changes, beyondReach) => {
    expect(modeChangesForLevel({ level, held: new Set(held), modePowers: POWERS, supported: ALL, setterLevel }))
      .toEqual({ changes: changes.map((mode) => ({ mode })), beyondReach });
  });

  it('uses only modes the server has', () => {
    expect(modeChangesForLevel({ level: 30, held: new Set(), modePowers: POWERS, supported: ['o', 'v'], setterLevel: 50 }))
      .toEqual({ changes: [{ mode: '+v' }], beyondReach: [] });
  });
});
