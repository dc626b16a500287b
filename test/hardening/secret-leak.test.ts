// The secret-leak watch itself (test/helpers/leaks.ts): its detector finds a secret in every form
// it takes and never prints it, and every channel of the whole-suite watch is wired. A channel is
// proven with a canary: a registered value that goes through the very same path as a secret but
// is counted as a sighting instead of failing the run.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import type { OperationTask } from '../../src/engine/operations/index.js';
import { logger } from '../../src/util/log.js';
import { SecretSet } from '../../src/util/redact.js';
import { startTestApp, ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { isRegisteredSecret, leakObservations, observe, registerCanary, type LeakChannel } from '../helpers/leaks.js';
import { sseRequest } from '../helpers/sse.js';
import { LeakDetector, isSecretWorthScanning, secretHint } from '../support/leak-detector.js';
import { formatFindings, readJsonLines, runFile, type SamplerStatus } from '../support/leak-run.js';

const canary = (label: string) => `leakcanary_${label}_${randomBytes(6).toString('hex')}`;
const sightings = (value: string, channel: LeakChannel) => leakObservations().sightings.filter((s) => s.channel === channel && s.hint === secretHint(value)).length;
const seen = (value: string, channel: LeakChannel) => sightings(value, channel) > 0;

describe('the leak detector', () => {
  const key = ['-----BEGIN OPENSSH PRIVATE KEY-----', `b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ${randomBytes(12).toString('hex')}`, `QyNTUxOQAAACDd8hH9${randomBytes(16).toString('hex')}`, '-----END OPENSSH PRIVATE KEY-----', ''].join('\n');
  const password = `p@ss/w0rd:${randomBytes(6).toString('hex')}"x`;

  it('finds a secret as itself, URL-encoded, JSON-escaped, and a key by any line of it', () => {
    const d = new LeakDetector();
    d.add(password);
    d.add(key);
    expect(d.scan(`Fatal: ${password} rejected`)).toHaveLength(1);
    expect(d.scan(`rest:https://u:${encodeURIComponent(password)}@host/`)).toHaveLength(1);
    expect(d.scan(JSON.stringify({ message: `bad ${password}` }))).toHaveLength(1);
    expect(d.scan(JSON.stringify({ key }))).toHaveLength(1);
    expect(d.scan(`ssh: ${key.split('\n')[2]}`)).toHaveLength(1);
    expect(d.scan('-----BEGIN OPENSSH PRIVATE KEY----- nothing else')).toEqual([]);
    expect(d.scan('an ordinary log line')).toEqual([]);
  });

  it('never quotes a secret: a hint and a redacted excerpt, even with another secret beside it', () => {
    const d = new LeakDetector();
    const other = `second-${randomBytes(8).toString('hex')}`;
    d.add(password);
    d.add(other);
    const [m, n] = d.scan(`${'x'.repeat(300)} password=${password} and ${other}; ${'y'.repeat(300)}`);
    for (const f of [m!, n!]) {
      const printed = formatFindings([{ channel: 'log', where: 'here', hint: f.hint, excerpt: f.excerpt }]);
      expect(printed).not.toContain(password);
      expect(printed).not.toContain(encodeURIComponent(password));
      expect(printed).not.toContain(other);
      expect(printed).toContain('password=«len');
    }
    expect(m!.hint).toBe(secretHint(password));
  });

  it('leaves out values too plain to be anyone\'s secret', () => {
    for (const v of ['x'.repeat(40), 'S3RVER', 'postgres', 'password', 'abcdefgh', '12345678', '']) expect(isSecretWorthScanning(v)).toBe(false);
    for (const v of ['pw-123456', 'rest-repo-password-1', randomBytes(15).toString('base64url')]) expect(isSecretWorthScanning(v)).toBe(true);
  });

  it('tells canaries from secrets', () => {
    const d = new LeakDetector();
    const c = canary('unit');
    d.add(c, 'canary');
    expect(d.scan(`saw ${c}`)).toMatchObject([{ kind: 'canary' }]);
  });
});

describe('leaks the watch found', () => {
  it('a rest: URI with user:password@ is stored without them; the password goes to secrets.yaml', async () => {
    const t = await startTestApp();
    try {
      const pass = `rest-${randomBytes(8).toString('hex')}`;
      const res = await t.gql<{ updateBackupConfig: { __typename: string } }>(
        `mutation($c: BackupConfigInput!) { updateBackupConfig(input: { instance: "home", config: $c }) { __typename } }`,
        { c: { repository: `rest:http://backup:${pass}@127.0.0.1:9/x`, password: 'repo-password-xyz-1' } },
      );
      expect(isRegisteredSecret(pass)).toBe(true);
      expect(res.data?.updateBackupConfig.__typename).toBe('BackupConfigPayload');
      const config = readFileSync(`${t.data.instanceDir()}/config.yaml`, 'utf8');
      expect(config).toContain('repository: rest:http://127.0.0.1:9/x');
      expect(config).not.toContain(pass);
      const secrets = readFileSync(`${t.data.instanceDir()}/secrets.yaml`, 'utf8');
      expect(secrets).toMatch(/rest:\s+username: backup\s+password: rest-/);
      const view = await t.gql<{ instance: { backupConfig: { repository: string; configuredCredentials: string[] } } }>(`{ instance(name: "home") { backupConfig { repository configuredCredentials } } }`);
      expect(view.data?.instance.backupConfig).toEqual({ repository: 'rest:http://127.0.0.1:9/x', configuredCredentials: ['rest'] });
    } finally {
      await t.close();
    }
  });
});

describe('the whole-suite watch', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await startTestApp();
    url = (await t.app.start()).url;
  });
  afterAll(async () => { await t?.close(); });

  it('runs for this file: a run directory shared with the argv sampler, which is alive', () => {
    const { runDir } = leakObservations();
    expect(runDir && existsSync(runDir)).toBeTruthy();
    const status = JSON.parse(readFileSync(runFile(runDir!, 'sampler.json'), 'utf8')) as SamplerStatus;
    expect(status.ticks).toBeGreaterThan(0);
    expect(Date.now() - status.updatedAt).toBeLessThan(10_000);
  });

  it('registers what the product holds as secret and the secret fields of requests', async () => {
    const held = `held-${randomBytes(8).toString('hex')}`;
    new SecretSet().add(held);
    expect(isRegisteredSecret(held)).toBe(true);
    // The server's own tokens are in its secret set.
    expect(isRegisteredSecret(ADMIN_TOKEN)).toBe(true);
    const sent = `sent-${randomBytes(8).toString('hex')}`;
    await t.gql(`mutation { updateBackupConfig(input: { instance: "nope-x", config: { repository: "/srv/r", password: "${sent}" } }) { __typename } }`);
    expect(isRegisteredSecret(sent)).toBe(true);
    const variable = `var-${randomBytes(8).toString('hex')}`;
    await t.gql(`mutation($c: BackupConfigInput!) { updateBackupConfig(input: { instance: "nope-x", config: $c }) { __typename } }`, { c: { repository: '/srv/r', password: variable } });
    expect(isRegisteredSecret(variable)).toBe(true);
  });

  it('sees in-process responses and error messages', async () => {
    const c = canary('response');
    registerCanary(c);
    const res = await t.gql(`{ instances { ${c} } }`);
    expect(JSON.stringify(res.errors)).toContain(c);
    expect(seen(c, 'response')).toBe(true);
  });

  it('sees responses over a port', async () => {
    const c = canary('port');
    registerCanary(c);
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ query: `{ instances { ${c} } }` }) });
    expect(await res.text()).toContain(c);
    // Once as the server wrote it, once as the test's fetch read it.
    expect(sightings(c, 'response')).toBeGreaterThanOrEqual(2);
  });

  it('sees log lines at every level and whatever is written to stderr', () => {
    const debug = canary('debug');
    const raw = canary('stderr');
    registerCanary(debug);
    registerCanary(raw);
    logger('leak-watch').debug(`a debug line nobody prints: ${debug}`);
    process.stderr.write(`written straight to stderr: ${raw}\n`);
    expect(seen(debug, 'log')).toBe(true);
    expect(seen(raw, 'log')).toBe(true);
  });

  it('sees SSE and graphql-ws events, operation records and logs, and the data dir left behind', async () => {
    const c = canary('operation');
    registerCanary(c);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const task: OperationTask = {
      kind: 'CHECK_REPOSITORY',
      instance: 'home',
      async run(ctx) {
        ctx.progress({ phase: `checking ${c}`, bytesTotal: 10, bytesDone: 1 });
        ctx.log(`looking at ${c}`);
        await gate;
        return { message: `done with ${c}` };
      },
    };
    const rec = await t.app.services.engine.submit(task);
    onTestFinished(() => release());
    // Progress is published a few times a second: wait until the record carries the canary.
    for (let i = 0; i < 100 && !t.app.services.engine.get(rec.id)?.progress?.phase?.includes(c); i++) await sleep(30);
    const query = `subscription($id: ID!) { operation(id: $id) { status progress { phase } } }`;

    const sse = sseRequest(url, { query, variables: { id: rec.id } }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    const first = await sse.next();
    expect(first.value?.data).toContain(c);
    await sse.return(undefined);
    const afterSse = sightings(c, 'subscription');
    expect(afterSse).toBeGreaterThan(0);

    const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` }, retryAttempts: 0 });
    const wsFirst = await new Promise<string>((resolve, reject) => {
      const stop = client.subscribe({ query, variables: { id: rec.id } }, { next: (r) => { stop(); resolve(JSON.stringify(r)); }, error: reject, complete: () => undefined });
    });
    await client.dispose();
    expect(wsFirst).toContain(c);
    expect(sightings(c, 'subscription')).toBeGreaterThan(afterSse);

    release();
    await t.app.services.engine.waitFor(rec.id);
    expect(seen(c, 'operation-record')).toBe(true);
    const before = leakObservations().observed['data-dir'];
    await t.data.cleanup();
    expect(leakObservations().observed['data-dir']).toBeGreaterThan(before);
    expect(seen(c, 'data-dir')).toBe(true);
  });

  it('sees a value in a text seen before it was registered', () => {
    const c = canary('late');
    observe('log', `a line with ${c} in it`);
    expect(seen(c, 'log')).toBe(false);
    registerCanary(c);
    expect(seen(c, 'log')).toBe(true);
  });

  it('sees argv: the processes this worker spawns at once, and any process of the run through the sampler', async () => {
    const c = canary('argv');
    registerCanary(c);
    // A grandchild, so only the /proc sampler can see it.
    const child = spawn('sh', ['-c', 'sh -c "sleep 0.6; true" sh "$1"; true', 'sh', c], { stdio: 'ignore' });
    expect(seen(c, 'argv')).toBe(true);
    const sightings = runFile(leakObservations().runDir!, 'sightings.jsonl');
    let sampled = false;
    for (let i = 0; i < 100 && !sampled; i++) {
      await sleep(50);
      sampled = readJsonLines<{ channel: string; hint: string }>(sightings).some((s) => s.channel === 'argv' && s.hint === secretHint(c));
    }
    await new Promise((r) => child.once('close', r));
    expect(sampled).toBe(true);
  });
});
