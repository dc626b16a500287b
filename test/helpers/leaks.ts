// The secret-leak watch over the whole suite. Fixtures register every secret they create
// (registerSecret); the product's own secret sets, secrets.yaml files and the secret fields of
// GraphQL requests register theirs automatically. Every response, subscription event, log line,
// operation record, data-dir file and process argv the suite produces is then scanned
// (test/support/leak-setup.ts wires the channels, test/support/leak-sampler.ts reads argv);
// a test file in which a registered secret appears fails, and so does the run.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Kind, parse, visit } from 'graphql';
import YAML from 'yaml';
import { LeakDetector, type SecretKind } from '../support/leak-detector.js';
import { appendFinding, appendRegistration, leakRunDir, type LeakChannel, type LeakFinding } from '../support/leak-run.js';

export type { LeakChannel, LeakFinding } from '../support/leak-run.js';

/** GraphQL input fields whose values are secrets by definition. */
const SECRET_FIELDS = /^(password|secretAccessKey|accountKey|privateKey|serviceAccountKey|token|authorization)$/i;
const USERINFO = /^[a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)?\/\/[^\s/:@]+:([^\s/@]+)@/i;
const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};
/** Texts kept (bounded) to re-check against values registered after they were seen. */
const RECENT_CHARS = 2 << 20;

interface LeakState {
  detector: LeakDetector;
  runDir: string | undefined;
  file: string;
  test: string;
  findings: LeakFinding[];
  observed: Record<LeakChannel, number>;
  /** Canaries seen, by channel and hint (the proof that a channel is wired). */
  sightings: Array<{ channel: LeakChannel; hint: string }>;
  recent: Array<{ channel: LeakChannel; where: string; text: string }>;
  recentChars: number;
  /** Values a test sent in fields that are not secret (ids, names, paths): never secrets. */
  plain: Set<string>;
  installed: Set<string>;
}

const KEY = Symbol.for('wild-backup.leak-state');

/** One state per process (shared by every module instance and every test file the fork runs). */
export function leakState(): LeakState {
  const g = globalThis as typeof globalThis & { [KEY]?: LeakState };
  return (g[KEY] ??= {
    detector: new LeakDetector(),
    runDir: leakRunDir(),
    file: '(unknown file)',
    test: '(setup)',
    findings: [],
    observed: { response: 0, subscription: 0, log: 0, 'operation-record': 0, 'data-dir': 0, argv: 0 },
    sightings: [],
    recent: [],
    recentChars: 0,
    plain: new Set(),
    installed: new Set(),
  });
}

function add(value: unknown, kind: SecretKind): void {
  const s = leakState();
  if (typeof value !== 'string' || s.plain.has(value) || !s.detector.add(value, kind)) return;
  if (s.runDir) appendRegistration(s.runDir, value, kind);
  // Seen before it was registered (a generated password read back later): look again, for it only.
  const only = new Set([value]);
  for (const r of s.recent) report(r.channel, r.where, s.detector.scan(r.text, only));
}

/** Registers secret values: they must never appear in any response, event, log, record or argv. */
export function registerSecret(...values: Array<string | undefined | null>): void {
  for (const v of values) add(v, 'secret');
}

export function isRegisteredSecret(value: string): boolean {
  return leakState().detector.has(value);
}

/**
 * Declares values ordinary data: a test that sends one value both as a password and as an id or a
 * name (a fuzzer) shows it is no secret, and its echo as an id is no leak. Registered ones are forgotten.
 */
export function registerPlainValue(...values: string[]): void {
  const s = leakState();
  for (const v of values) {
    if (s.plain.has(v) || v.length < 8) continue;
    s.plain.add(v);
    if (s.detector.remove(v) && s.runDir) appendRegistration(s.runDir, v, 'plain');
  }
}

/** Registers a harmless marker: seeing it proves a channel is watched (no failure). */
export function registerCanary(value: string): void {
  add(value, 'canary');
}

function report(channel: LeakChannel, where: string, matches: ReturnType<LeakDetector['scan']>): void {
  const s = leakState();
  for (const m of matches) {
    if (m.kind === 'canary') {
      s.sightings.push({ channel, hint: m.hint });
      continue;
    }
    const finding: LeakFinding = { channel, where, workerPid: process.pid, hint: m.hint, excerpt: m.excerpt };
    s.findings.push(finding);
    if (s.runDir) appendFinding(s.runDir, finding);
  }
}

export function currentWhere(): string {
  const s = leakState();
  return `${s.file} > ${s.test}`;
}

/** Scans one text that left (or could leave) the server through `channel`. */
export function observe(channel: LeakChannel, text: string, where = currentWhere()): void {
  const s = leakState();
  s.observed[channel]++;
  if (text.length < 8) return;
  report(channel, where, s.detector.scan(text));
  s.recent.push({ channel, where, text });
  s.recentChars += text.length;
  while (s.recentChars > RECENT_CHARS && s.recent.length > 1) s.recentChars -= s.recent.shift()!.text.length;
}

/** How many texts each channel has scanned, and the canaries seen: for the harness's own test. */
export function leakObservations(): { observed: Record<LeakChannel, number>; sightings: Array<{ channel: LeakChannel; hint: string }>; secrets: number; runDir?: string } {
  const s = leakState();
  return { observed: { ...s.observed }, sightings: [...s.sightings], secrets: s.detector.size, runDir: s.runDir };
}

/**
 * The values of secret fields (password, keys, tokens) of a GraphQL request, inline or in variables,
 * are registered; values of its other fields are ordinary data (see registerPlainValue).
 */
export function registerSecretsFromGraphQL(query: unknown, variables?: unknown): void {
  const found = (key: string, value: string) => {
    if (SECRET_FIELDS.test(key)) return registerSecret(value);
    registerPlainValue(value);
    // The password of a URI's userinfo (rest:https://user:password@host/) is a secret all the same.
    const userinfo = USERINFO.exec(value);
    if (userinfo) registerSecret(safeDecode(userinfo[1]!));
  };
  if (typeof query === 'string' && query.includes('"')) {
    try {
      visit(parse(query), {
        ObjectField(node) {
          if (node.value.kind === Kind.STRING) found(node.name.value, node.value.value);
        },
        Argument(node) {
          if (node.value.kind === Kind.STRING) found(node.name.value, node.value.value);
        },
      });
    } catch {
      // not a parsable query: the server will say so
    }
  }
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'string') {
      found(key, v);
    } else if (Array.isArray(v)) {
      for (const x of v) walk(x, key);
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, k);
    }
  };
  walk(variables, '');
}

/** Every string value of a secrets.yaml (all of them are secrets). */
export function registerSecretsFromYaml(text: string): void {
  const walk = (v: unknown): void => {
    if (typeof v === 'string') registerSecret(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  try {
    walk(YAML.parse(text));
  } catch {
    // a deliberately broken secrets.yaml
  }
}

/** Files of a data dir that hold secrets by design, or restic's encrypted data. */
const SECRET_HOLDERS = new Set(['secrets.yaml', 'tokens.json', 'kubeconfig', 'talosconfig']);
const SKIP_DIRS = new Set(['backups', 'cache', 'repository']);
const MAX_FILE = 1 << 20;

function walkFiles(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (!SKIP_DIRS.has(name)) walkFiles(p, out);
    } else if (st.isFile()) out.push(p);
  }
}

/** Registers the secrets.yaml values of a Wild Central data dir (the embedded default's generated password among them). */
export function registerDataDirSecrets(dataDir: string): void {
  const instances = join(dataDir, 'instances');
  if (!existsSync(instances)) return;
  for (const name of readdirSync(instances)) {
    const file = join(instances, name, 'secrets.yaml');
    try {
      registerSecretsFromYaml(readFileSync(file, 'utf8'));
    } catch {
      // no secrets file
    }
  }
}

/**
 * Scans what the server left in a data dir (operation records and logs, config.yaml, state files),
 * all but the files that hold secrets by design, after registering its secrets.yaml values.
 */
export function scanDataDir(dataDir: string): void {
  registerDataDirSecrets(dataDir);
  const files: string[] = [];
  walkFiles(dataDir, files);
  for (const file of files) {
    const name = file.slice(file.lastIndexOf('/') + 1);
    if (SECRET_HOLDERS.has(name)) continue;
    try {
      if (statSync(file).size > MAX_FILE) continue;
      const text = readFileSync(file, 'utf8');
      if (text.includes('\0')) continue;
      observe('data-dir', text, `${currentWhere()} (file ${relative(dataDir, file)})`);
    } catch {
      // removed meanwhile
    }
  }
}

type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
const WATCHED = Symbol.for('wild-backup.leak-watched');

/**
 * A yoga.fetch that registers the secret fields of each request and scans each answer that is
 * not a stream (a stream over a port is scanned as the server writes it).
 */
export function watchedFetch(fetch: FetchLike): FetchLike {
  return async (input, init) => {
    if (typeof init?.body === 'string') {
      try {
        const body = JSON.parse(init.body) as { query?: unknown; variables?: unknown };
        registerSecretsFromGraphQL(body.query, body.variables);
      } catch {
        // not JSON
      }
    }
    const res = await fetch(input, init);
    const type = res.headers.get('content-type') ?? '';
    if (!/event-stream|multipart/.test(type)) observe('response', await res.clone().text());
    return res;
  };
}

/** Makes `app.yoga.fetch` (in process) watched; idempotent. */
export function watchApp<A extends { yoga: { fetch: unknown } }>(app: A): A {
  const yoga = app.yoga as A['yoga'] & { [WATCHED]?: true };
  if (yoga[WATCHED]) return app;
  const fetch = watchedFetch((yoga.fetch as FetchLike).bind(yoga));
  const proxy = new Proxy(yoga, {
    get: (target, prop) => (prop === 'fetch' ? fetch : prop === WATCHED ? true : Reflect.get(target, prop, target)),
  });
  (app as { yoga: unknown }).yoga = proxy;
  return app;
}
