/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Messages both ways: ghosts and webhooks, formatting, edits, deletions, replies, reactions,
 * attachments, threads, typing, stickers, @everyone, and a deleted webhook recreated.
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { StickerFormatType, type APIEmbed } from 'discord-api-types/v10';
import { MatrixUser, messagesOf } from '../harness/matrix-user.js';
import {
  fake, alice, guild, bob, carol, dana, PNG, body, ghost, relates, discordNet, channel, plumbed, upload,
  downloadMxc, fromWebhook, webhookContents, watchTyping, useDiscordBridge,
} from './discord-harness.js';
import { e2e, until } from './env.js';

useDiscordBridge();

describe('Discord bridge: messages', () => {
  it('bridges a Discord message to Matrix from the right ghost, with nick, global name or username and the avatar', async () => {
    const ch = channel('hello');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'hello from discord');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'hello from discord');
    expect(ev.sender).toBe(ghost(bob.id));
    expect(ev.content['format']).toBeUndefined(); // plain chat stays plain
    expect(await alice.displayName(ghost(bob.id))).toBe('Bobby'); // guild nick first
    const profile = await alice.request<{ avatar_url?: string }>('GET', `/_matrix/client/v3/profile/${encodeURIComponent(ghost(bob.id))}`);
    expect(profile.avatar_url).toMatch(/^mxc:\/\//);
    expect(await downloadMxc(profile.avatar_url!)).toEqual(PNG);

    fake.injectUserMessage(ch.id, carol.id, 'carol here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'carol here' && e.sender === ghost(carol.id));
    expect(await alice.displayName(ghost(carol.id))).toBe('Carol G'); // no nick: the global name
    fake.injectUserMessage(ch.id, dana.id, 'dana here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'dana here' && e.sender === ghost(dana.id));
    expect(await alice.displayName(ghost(dana.id))).toBe('dana'); // neither: the username
  });

  it('sends a Matrix message through the channel webhook under the sender\'s name, and never back to Matrix', async () => {
    const ch = channel('webhooked');
    const roomId = await plumbed(ch);
    await alice.sendText(roomId, 'hello from matrix');
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'hello from matrix'), 'the webhook execution');
    expect(exec.username).toBe('Alice');
    expect(exec.wait).toBe(true);
    const posted = fake.message(exec.messageId)!;
    expect(posted.author.username).toBe('Alice');
    expect(posted.webhook_id).toBe(fake.webhooks(ch.id)[0]!.id);
    // allowed_mentions is always set: nothing pings unless pilled
    const req = fake.requests.find((r) => r.route === '/webhooks/:webhook/:token' && (r.body as { content?: string }).content === 'hello from matrix')!;
    expect((req.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [], users: [], roles: [], replied_user: false });
    // a Discord message after it: the channel's events reach Matrix in order, so an echo would be there by now
    fake.injectUserMessage(ch.id, bob.id, 'after hello');
    await alice.waitForEvent(roomId, (e) => body(e) === 'after hello');
    const copies = (await alice.timeline(roomId)).filter((e) => body(e) === 'hello from matrix');
    expect(copies.map((e) => e.sender)).toEqual([alice.userId]);
  });

  it('converts formatting, mentions, roles, channels and spoilers both ways', async () => {
    const ch = channel('fmt');
    const other = channel('elsewhere');
    const roomId = await plumbed(ch);
    const mods = fake.addRole(guild.id, { name: 'helpers', mentionable: true });
    await until(() => discordNet().client?.guilds.cache.get(guild.id)?.roles.cache.has(mods.id), 'the role to reach the bridge');
    fake.injectUserMessage(ch.id, bob.id, `**bold** *it* ||secret|| \`code\` <@${carol.id}> <#${other.id}> <@&${mods.id}> <script>`);
    const ev = await alice.waitForEvent(roomId, (e) => body(e).startsWith('**bold**'));
    const html = String(ev.content['formatted_body']);
    expect(html).toContain('<strong>bold</strong> <em>it</em> <span data-mx-spoiler>secret</span> <code>code</code>');
    expect(html).toContain(`<a href="https://matrix.to/#/${ghost(carol.id)}">Carol G</a>`);
    expect(html).toContain(`<a href="https://matrix.to/#/#discord_${guild.id}_${other.id}:localhost">#elsewhere</a>`);
    expect(html).toContain('@helpers');
    expect(html).toContain('&lt;script&gt;');
    expect(body(ev)).toBe('**bold** *it* ||secret|| `code` Carol G #elsewhere @helpers <script>');

    await alice.sendText(roomId, 'x', {
      format: 'org.matrix.custom.html',
      formatted_body: `<b>loud</b> <del>no</del> <span data-mx-spoiler>hidden</span> <a href="https://matrix.to/#/${ghost(carol.id)}">Carol G</a> ` +
        '@helpers snake_case <code>a*b</code><pre><code class="language-ts">let x = 1;\n</code></pre>',
    });
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content.startsWith('**loud**')), 'the formatted message');
    expect(exec.content).toBe(`**loud** ~~no~~ ||hidden|| <@${carol.id}> <@&${mods.id}> snake\\_case \`a*b\`\n\`\`\`ts\nlet x = 1;\n\`\`\``);
    const req = fake.requests.find((r) => r.route === '/webhooks/:webhook/:token' && (r.body as { content?: string }).content === exec.content)!;
    expect((req.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [], users: [carol.id], roles: [mods.id], replied_user: false });

    // plain Matrix text shows on Discord as typed: markdown characters escaped
    await alice.sendText(roomId, 'a *b* _c_ > d <@123> https://example.org/x_y_z');
    await until(() => webhookContents(ch.id).includes('a \\*b\\* \\_c\\_ > d \\<@123> https://example.org/x_y_z'), 'the escaped plain text');

    // an emote is in italics: a URL in it kept from closing them, code holding a star outside them
    const waves = await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.emote', body: 'waves at https://example.org/x_y' });
    const wavesExec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === '*waves at https://example.org/x%5Fy*'), 'the emote');
    // and so is its edit
    await alice.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.emote', body: '* waves twice', 'm.new_content': { msgtype: 'm.emote', body: 'waves twice' }, 'm.relates_to': { rel_type: 'm.replace', event_id: waves },
    });
    await until(() => fake.message(wavesExec.messageId)?.content === '*waves twice*', 'the emote to be edited');
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.emote', body: 'runs ls * again', format: 'org.matrix.custom.html', formatted_body: 'runs <code>ls *</code> again' });
    await until(() => webhookContents(ch.id).includes('*runs* `ls *` *again*'), 'the emote holding code');
  });

  it('bridges edits and deletions both ways through the message map', async () => {
    const ch = channel('edits');
    const roomId = await plumbed(ch);
    // Discord → Matrix
    const m = fake.injectUserMessage(ch.id, bob.id, 'the quick brwn fox');
    const orig = await alice.waitForEvent(roomId, (e) => body(e) === 'the quick brwn fox');
    fake.editUserMessage(ch.id, m.id, 'the quick brown fox');
    const edit = await alice.waitForEvent(roomId, (e) => relates(e)?.['rel_type'] === 'm.replace');
    expect(edit.sender).toBe(ghost(bob.id));
    expect(relates(edit)?.['event_id']).toBe(orig.event_id);
    expect((edit.content['m.new_content'] as { body: string }).body).toBe('the quick brown fox');
    fake.deleteUserMessage(ch.id, m.id);
    await until(async () => Object.keys((await alice.getEvent(roomId, orig.event_id)).content).length === 0, 'the Matrix event to be redacted');

    // Matrix → Discord
    const mine = await alice.sendText(roomId, 'matrix typo');
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'matrix typo'), 'the message');
    await alice.sendText(roomId, '* matrix fixed', { 'm.new_content': { msgtype: 'm.text', body: 'matrix fixed' }, 'm.relates_to': { rel_type: 'm.replace', event_id: mine } });
    await until(() => fake.message(exec.messageId)?.content === 'matrix fixed', 'the Discord message to be edited');
    await alice.redact(roomId, mine);
    await until(() => fake.message(exec.messageId) === undefined, 'the Discord message to be deleted');
    // the echoes of the bridge's own edit and deletion are not bridged back (they would be before this marker)
    fake.injectUserMessage(ch.id, carol.id, 'edits marker');
    await alice.waitForEvent(roomId, (e) => body(e) === 'edits marker');
    const timeline = await alice.timeline(roomId);
    expect(timeline.filter((e) => e.type === 'm.room.redaction').map((e) => e.sender)).toEqual([ghost(bob.id), alice.userId]);
    expect(timeline.filter((e) => relates(e)?.['rel_type'] === 'm.replace').map((e) => e.sender)).toEqual([ghost(bob.id), alice.userId]);
  });

  it('bridges edits and deletions of messages no longer in the client cache (partials)', async () => {
    const ch = channel('partials');
    const roomId = await plumbed(ch);
    const m = fake.injectUserMessage(ch.id, carol.id, 'soon forgotten');
    const orig = await alice.waitForEvent(roomId, (e) => body(e) === 'soon forgotten');
    const cached = discordNet().client!.channels.cache.get(ch.id) as { messages: { cache: Map<string, unknown> } };
    cached.messages.cache.clear();
    fake.editUserMessage(ch.id, m.id, 'remembered after all');
    const edit = await alice.waitForEvent(roomId, (e) => relates(e)?.['rel_type'] === 'm.replace');
    expect(relates(edit)?.['event_id']).toBe(orig.event_id);
    cached.messages.cache.clear();
    fake.deleteUserMessage(ch.id, m.id);
    await until(async () => Object.keys((await alice.getEvent(roomId, orig.event_id)).content).length === 0, 'the Matrix event to be redacted');
  });

  it('bridges replies both ways', async () => {
    const ch = channel('replies');
    const roomId = await plumbed(ch);
    const q = fake.injectUserMessage(ch.id, bob.id, 'a question from discord');
    const qEv = await alice.waitForEvent(roomId, (e) => body(e) === 'a question from discord');
    // Matrix reply → a quote of the original with a jump link (webhooks cannot make real replies)
    await alice.sendText(roomId, '> <@x> a question from discord\n\nthe answer', { 'm.relates_to': { 'm.in_reply_to': { event_id: qEv.event_id } } });
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content.endsWith('the answer')), 'the reply');
    expect(exec.content).toBe(`> <@${bob.id}>: a question from discord [↪](<https://discord.com/channels/${guild.id}/${ch.id}/${q.id}>)\nthe answer`);
    // Discord reply → Matrix reply to the mapped event (of a Matrix user's message, too)
    fake.injectUserMessage(ch.id, carol.id, 'replying on discord', { replyTo: exec.messageId });
    const reply = await alice.waitForEvent(roomId, (e) => body(e) === 'replying on discord');
    const aliceEvent = (await alice.timeline(roomId)).find((e) => e.sender === alice.userId && body(e).endsWith('the answer'))!;
    expect(relates(reply)).toEqual({ 'm.in_reply_to': { event_id: aliceEvent.event_id } });
    // an edit of the Matrix reply keeps the quote on Discord
    await alice.sendText(roomId, '* the better answer', {
      'm.new_content': { msgtype: 'm.text', body: 'the better answer' }, 'm.relates_to': { rel_type: 'm.replace', event_id: aliceEvent.event_id },
    });
    await until(() => fake.message(exec.messageId)?.content.endsWith('the better answer'), 'the reply to be edited');
    expect(fake.message(exec.messageId)!.content).toBe(exec.content.replace(/the answer$/, 'the better answer'));
  });

  it('bridges reactions both ways', async () => {
    const ch = channel('reactions');
    const roomId = await plumbed(ch);
    const m = fake.injectUserMessage(ch.id, bob.id, 'react to me');
    const target = await alice.waitForEvent(roomId, (e) => body(e) === 'react to me');
    // Discord → Matrix, and taken back
    fake.addReaction(ch.id, m.id, carol.id, '🎉');
    const r = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(carol.id));
    expect(relates(r)).toEqual({ rel_type: 'm.annotation', event_id: target.event_id, key: '🎉' });
    fake.removeReaction(ch.id, m.id, carol.id, '🎉');
    await until(async () => Object.keys((await alice.getEvent(roomId, r.event_id)).content).length === 0, 'the reaction to be redacted');
    // Matrix → Discord: the bot reacts, and takes it back when the Matrix reaction is redacted
    const mine = await alice.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    await until(() => fake.message(m.id)?.reactions?.find((x) => x.emoji.name === '👍' && x.me), 'the bot to react');
    await alice.redact(roomId, mine);
    await until(() => !fake.message(m.id)?.reactions?.some((x) => x.emoji.name === '👍'), 'the bot reaction to go');
    // a custom emoji reaction from Discord arrives as its image
    const party = fake.addEmoji(guild.id, { name: 'party', image: { name: 'party.png', data: PNG, contentType: 'image/png' } });
    fake.addReaction(ch.id, m.id, bob.id, { id: party.id });
    const custom = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(bob.id));
    const key = String(relates(custom)?.['key']);
    expect(key).toMatch(/^mxc:\/\//);
    expect(await downloadMxc(key)).toEqual(PNG);
    // Discord names a heart without VS16; Matrix clients react with it, and only equal keys count together
    fake.addReaction(ch.id, m.id, carol.id, '\u2764');
    const heart = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(carol.id) && e.event_id !== r.event_id);
    expect(relates(heart)?.['key']).toBe('\u2764\uFE0F');
  });

  it('bridges attachments both ways, and links files too big for Discord', async () => {
    const ch = channel('files');
    const roomId = await plumbed(ch);
    // Discord → Matrix: the text, then one event per attachment
    fake.injectUserMessage(ch.id, bob.id, 'look at this', { files: [{ name: 'pic.png', data: PNG, contentType: 'image/png' }, { name: 'notes.txt', data: Buffer.from('some notes') }] });
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'notes.txt'));
    const msgs = messagesOf(events).filter((e) => e.sender === ghost(bob.id));
    expect(msgs.map((e) => [e.content['msgtype'], body(e)])).toEqual([['m.text', 'look at this'], ['m.image', 'pic.png'], ['m.file', 'notes.txt']]);
    expect((msgs[1]!.content['info'] as { mimetype: string }).mimetype).toBe('image/png');
    expect(await downloadMxc(String(msgs[1]!.content['url']))).toEqual(PNG);
    expect((await downloadMxc(String(msgs[2]!.content['url']))).toString()).toBe('some notes');

    // Matrix → Discord: an uploaded file
    const data = Buffer.from('report from matrix\n');
    const mxc = await upload(data, 'report.txt', 'text/plain');
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.file', body: 'report.txt', url: mxc, info: { mimetype: 'text/plain', size: data.length } });
    const posted = await until(() => fromWebhook(ch.id).find((m) => m.attachments.some((a) => a.filename === 'report.txt')), 'the uploaded file');
    expect(posted.author.username).toBe('Alice');
    expect(Buffer.from(await (await fetch(posted.attachments[0]!.url)).arrayBuffer())).toEqual(data);

    // too big for Discord (10 MiB by default): a link to the media proxy instead
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 7);
    const bigMxc = await upload(big, 'big.bin', 'application/octet-stream');
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.file', body: 'big.bin', url: bigMxc, info: { size: big.length } });
    const link = await until(() => fromWebhook(ch.id).find((m) => m.content.includes('big.bin')), 'the link');
    expect(link.attachments).toEqual([]);
    const url = /(https?:\/\/\S+)$/.exec(link.content)![1]!;
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe(big.length);
    await res.body?.cancel();
  });

  it('says a Matrix poll and a location as text through the webhook; votes are not bridged', async () => {
    const ch = channel('polls');
    const roomId = await plumbed(ch);
    const pollId = await alice.sendEvent(roomId, 'm.poll.start', {
      'm.poll': {
        question: { 'm.text': [{ body: 'Which day?' }] }, max_selections: 2,
        answers: [{ 'm.id': 'm', 'm.text': [{ body: 'Monday' }] }, { 'm.id': 't', 'm.text': [{ body: 'Tuesday' }] }],
      },
      'm.text': [{ body: 'Which day?\n1. Monday\n2. Tuesday' }],
    });
    await alice.sendEvent(roomId, 'm.poll.response', { 'm.relates_to': { rel_type: 'm.reference', event_id: pollId }, 'm.selections': ['m'] });
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.location', body: 'Location geo:48.8584,2.2945', geo_uri: 'geo:48.8584,2.2945' });
    await until(() => webhookContents(ch.id).some((c) => c.startsWith('Location:')), 'the location');
    expect(webhookContents(ch.id)).toEqual([
      'Poll: Which day? (choose up to 2) 1. Monday · 2. Tuesday',
      'Location: https://www.openstreetmap.org/?mlat=48.8584&mlon=2.2945#map=16/48.8584/2.2945',
    ]);
    expect(fromWebhook(ch.id).map((m) => m.author.username)).toEqual(['Alice', 'Alice']);
  });

  it('bridges a Discord poll and its result to Matrix as text from the ghost', async () => {
    const ch = channel('discordpolls');
    const roomId = await plumbed(ch);
    const poll = fake.injectUserMessage(ch.id, bob.id, '', { poll: { question: 'Tea or coffee?', answers: [{ text: 'Tea', emoji: '🍵' }, 'Coffee'], multiselect: true } });
    const ev = await alice.waitForEvent(roomId, (e) => body(e).includes('Tea or coffee?'));
    expect(ev.sender).toBe(ghost(bob.id));
    expect(body(ev)).toBe('**Poll:** Tea or coffee? (choose any number)\n1. 🍵 Tea\n2. Coffee');
    fake.endPoll(ch.id, poll.id, { top: 'Tea', topVotes: 3, totalVotes: 5 });
    const ended = await alice.waitForEvent(roomId, (e) => body(e).includes('has ended'));
    expect(ended.sender).toBe(ghost(bob.id));
    expect(body(ended)).toBe('The poll "Tea or coffee?" has ended. Top answer: Tea (3 of 5 votes).');
  });

  it('bridges a forwarded Discord message with what it forwards (text and files), not as a reply', async () => {
    const ch = channel('forwards');
    const elsewhere = channel('notbridged');
    const roomId = await plumbed(ch);
    const original = fake.injectUserMessage(elsewhere.id, carol.id, 'worth **reading**\nsecond line', { files: [{ name: 'plan.txt', data: Buffer.from('the plan') }] });
    fake.forwardMessage(ch.id, bob.id, original.id);
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'plan.txt'));
    const msgs = messagesOf(events).filter((e) => e.sender === ghost(bob.id));
    expect(msgs.map((e) => [e.content['msgtype'], body(e)])).toEqual([['m.text', expect.stringContaining('Forwarded')], ['m.file', 'plan.txt']]);
    expect(msgs[0]!.content['formatted_body']).toBe('<em>Forwarded:</em><br><blockquote>worth <strong>reading</strong><br>second line</blockquote>');
    expect((await downloadMxc(String(msgs[1]!.content['url']))).toString()).toBe('the plan');
    // a message of this very channel, forwarded here: still not a reply to it
    fake.injectUserMessage(ch.id, carol.id, 'said here first');
    const first = await alice.waitForEvent(roomId, (e) => body(e) === 'said here first');
    fake.forwardMessage(ch.id, bob.id, fake.messages(ch.id).find((m) => m.content === 'said here first')!.id);
    const again = await alice.waitForEvent(roomId, (e) => e.event_id !== first.event_id && body(e).includes('said here first'));
    expect(again.content['m.relates_to']).toBeUndefined();
  });

  it('bridges a bot\'s rich embeds along with its text, but not Discord\'s link previews', async () => {
    const ch = channel('embeds');
    const roomId = await plumbed(ch);
    const ci = fake.addUser({ username: 'ci-bot', bot: true });
    fake.addMember(guild.id, ci.id);
    fake.injectUserMessage(ch.id, ci.id, 'Build finished: https://ci.example/42', { embeds: [
      { type: 'rich' as APIEmbed['type'], title: 'Build #42 passed', url: 'https://ci.example/42', description: 'all 963 tests green', fields: [{ name: 'Branch', value: 'main' }] },
      { type: 'link' as APIEmbed['type'], title: 'ci.example', url: 'https://ci.example/42', description: 'the preview of the link' },
    ] });
    const ev = await alice.waitForEvent(roomId, (e) => body(e).startsWith('Build finished'));
    expect(ev.sender).toBe(ghost(ci.id));
    expect(body(ev)).toContain('Build #42 passed');
    expect(body(ev)).toContain('all 963 tests green');
    expect(body(ev)).toContain('Branch');
    expect(body(ev)).not.toContain('the preview of the link');
  });

  it('bridges a Discord thread as a Matrix thread, both ways', async () => {
    const ch = channel('threads');
    const roomId = await plumbed(ch);
    const root = fake.injectUserMessage(ch.id, bob.id, 'start a thread here');
    const rootEv = await alice.waitForEvent(roomId, (e) => body(e) === 'start a thread here');
    // someone on Discord starts a thread on the message (it takes the message's id)
    const res = await fetch(`${fake.apiUrl}/v10/channels/${ch.id}/messages/${root.id}/threads`, {
      method: 'POST', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'side talk' }),
    });
    expect(res.status).toBe(200);
    await until(() => discordNet().client?.channels.cache.get(root.id)?.isThread(), 'the thread to reach the bridge');
    fake.injectUserMessage(root.id, carol.id, 'in the thread');
    const inThread = await alice.waitForEvent(roomId, (e) => body(e) === 'in the thread');
    expect(relates(inThread)).toMatchObject({ rel_type: 'm.thread', event_id: rootEv.event_id });
    // a Matrix message in the thread goes to the Discord thread
    await alice.sendText(roomId, 'matrix in the thread', {
      'm.relates_to': { rel_type: 'm.thread', event_id: rootEv.event_id, is_falling_back: true, 'm.in_reply_to': { event_id: inThread.event_id } },
    });
    await until(() => fake.messages(root.id).some((m) => m.content === 'matrix in the thread' && m.webhook_id), 'the message in the Discord thread');
    // a Matrix thread on a message that has no Discord thread yet starts one, named after the message
    const second = fake.injectUserMessage(ch.id, bob.id, 'no thread yet');
    const secondEv = await alice.waitForEvent(roomId, (e) => body(e) === 'no thread yet');
    await alice.sendText(roomId, 'thread from matrix', {
      'm.relates_to': { rel_type: 'm.thread', event_id: secondEv.event_id, is_falling_back: true, 'm.in_reply_to': { event_id: secondEv.event_id } },
    });
    await until(() => fake.messages(second.id).some((m) => m.content === 'thread from matrix'), 'a new Discord thread with the message');
    expect(fake.channel(second.id)?.name).toBe('no thread yet');
    expect(fake.channel(second.id)?.parent_id).toBe(ch.id);
  });

  it('shows Matrix typing on Discord', async () => {
    const ch = channel('typing');
    const roomId = await plumbed(ch);
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`, { typing: true, timeout: 10_000 });
    await until(() => fake.requests.some((r) => r.path === `/channels/${ch.id}/typing` && r.status === 204), 'the bot to type in the channel');
  });

  it('shows Discord typing on Matrix through the ghost until the message arrives', async () => {
    const ch = channel('typing-back');
    const roomId = await plumbed(ch);
    const typing = await watchTyping(roomId);
    fake.injectTyping(ch.id, carol.id);
    expect(await typing.until((users) => users.includes(ghost(carol.id)))).toEqual([ghost(carol.id)]);
    // sending the message ends the typing (Discord says nothing more)
    fake.injectUserMessage(ch.id, carol.id, 'typed it');
    await typing.until((users) => !users.includes(ghost(carol.id)), 5_000); // well before the 10 s a TYPING_START lasts
    await alice.waitForEvent(roomId, (e) => body(e) === 'typed it' && e.sender === ghost(carol.id));
    // typing that is not followed by a message ends when Discord stops repeating it (10 s)
    const t0 = Date.now();
    fake.injectTyping(ch.id, dana.id);
    await typing.until((users) => users.includes(ghost(dana.id)));
    await typing.until((users) => !users.includes(ghost(dana.id)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(9_500);
  });

  it('recreates the channel webhook when someone deletes it on Discord', async () => {
    const ch = channel('rehook');
    const roomId = await plumbed(ch);
    await alice.sendText(roomId, 'first');
    await until(() => webhookContents(ch.id).includes('first'), 'the first message');
    const old = fake.webhooks(ch.id)[0]!;
    const del = await fetch(`${fake.apiUrl}/v10/webhooks/${old.id}`, { method: 'DELETE', headers: { authorization: `Bot ${fake.token}` } });
    expect(del.status).toBe(204);
    await alice.sendText(roomId, 'second');
    await until(() => webhookContents(ch.id).includes('second'), 'the second message');
    const now = fake.webhooks(ch.id);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(old.id);
    // the new webhook's messages are the bridge's own too: not bridged back
    fake.injectUserMessage(ch.id, bob.id, 'after second');
    await alice.waitForEvent(roomId, (e) => body(e) === 'after second');
    expect((await alice.timeline(roomId)).filter((e) => body(e) === 'second').map((e) => e.sender)).toEqual([alice.userId]);
  });
});

describe('Discord bridge: stickers and @everyone', () => {
  it('bridges a Discord sticker as m.sticker, and a Lottie one as its name', async () => {
    const ch = channel('stickers');
    const roomId = await plumbed(ch);
    const wave = fake.addSticker(guild.id, { name: 'wave', formatType: StickerFormatType.PNG, image: { name: 'wave.png', data: PNG, contentType: 'image/png' } });
    fake.injectUserMessage(ch.id, bob.id, '', { stickers: [wave.id] });
    const sticker = await alice.waitForEvent(roomId, (e) => e.type === 'm.sticker');
    expect(sticker.sender).toBe(ghost(bob.id));
    expect(sticker.content['body']).toBe('wave');
    expect(sticker.content['info']).toEqual({ mimetype: 'image/png', w: 160, h: 160 });
    expect(await downloadMxc(String(sticker.content['url']))).toEqual(PNG);
    const dance = fake.addSticker(guild.id, { name: 'dance', formatType: StickerFormatType.Lottie });
    fake.injectUserMessage(ch.id, carol.id, '', { stickers: [dance.id] });
    const lottie = await alice.waitForEvent(roomId, (e) => body(e) === '[sticker: dance]');
    expect(lottie.sender).toBe(ghost(carol.id));
  });

  it('lets @everyone and @here ping only from Matrix users with everyoneMentionPower (50), and defuses them from others', async () => {
    const ch = channel('everyone');
    const roomId = await plumbed(ch); // alice made the room: power 100
    const zed = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `discordzed${Date.now()}`, { displayName: 'Zed' });
    await zed.join(roomId);
    await alice.sendText(roomId, '@everyone meeting now');
    await zed.sendText(roomId, '@here lunch?');
    await alice.sendText(roomId, 'mail me at me@everyone.example'); // not a mention: no power check, nothing pings
    await until(() => webhookContents(ch.id).length === 3, 'the three messages');
    expect(webhookContents(ch.id)).toEqual(['@everyone meeting now', '@\u200bhere lunch?', 'mail me at me@everyone.example']);
    const mentions = fake.requests.filter((r) => r.route === '/webhooks/:webhook/:token' && r.query['wait'] === 'true' && String((r.body as { content?: string }).content).match(/meeting|lunch|mail me/))
      .map((r) => (r.body as { allowed_mentions: { parse: string[] } }).allowed_mentions.parse);
    expect(mentions).toEqual([['everyone'], [], []]);
  });
});
