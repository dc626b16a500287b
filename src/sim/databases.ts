// The real database servers behind the sim's database pods: PostgreSQL, MariaDB and Redis from
// the system's binaries, on free ports, with their data in the PVC directory of their pod (so
// scaling the workload to 0 stops the server and scaling up starts it on the same data).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../util/net.js';
import type { KubeObject } from './objects.js';
import { DEFAULT_PATH, type PodBacking } from './runtime.js';

const run = promisify(execFile);

/** Runs a client with SQL on stdin (statements run one by one, and no value lands in argv). */
function runWithInput(file: string, args: string[], input: string, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${path.basename(file)} exited with ${code}: ${err.trim()}`))));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type DatabaseEngine = 'postgres' | 'mysql' | 'redis';

/** The PostgreSQL binaries directory of the newest installed major version. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'postgres'))) return path.join(root, v, 'bin');
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin');
}

interface Ids { uid: number; gid: number }
/** PostgreSQL refuses to run as root: as root we run it as the system's postgres user. */
async function postgresIds(): Promise<Ids | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/** Makes every directory above `dir` up to `root`'s parent traversable (x only) by another user (temp dirs are 0700). */
function openPath(root: string, dir: string): void {
  const top = path.dirname(root);
  for (let cur = path.dirname(dir); cur.startsWith(top) && cur !== top; cur = path.dirname(cur)) {
    if (existsSync(cur)) chmodSync(cur, statSync(cur).mode | 0o111);
  }
  // Above the sim's own root we change nothing: say clearly what blocks the postgres user.
  for (let cur = top; cur !== path.dirname(cur); cur = path.dirname(cur)) {
    if (existsSync(cur) && (statSync(cur).mode & 0o001) === 0) {
      throw new Error(`PostgreSQL runs as the postgres user and cannot reach ${dir}: ${cur} is not searchable by others (chmod o+x ${cur}, or choose a directory under /tmp)`);
    }
  }
}

abstract class LocalServer implements PodBacking {
  protected proc: ChildProcess | undefined;
  port = 0;
  abstract readonly name: string;
  constructor(readonly namespace: string, readonly appLabel: string, readonly dataDir: string, readonly runDir: string) {}

  matches(pod: KubeObject): boolean {
    return pod.metadata.namespace === this.namespace && pod.metadata.labels?.app === this.appLabel;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  abstract start(): Promise<void>;
  abstract execEnv(): Record<string, string>;

  /** A free port for the server to bind. */
  protected pickPort(): Promise<number> {
    return freePort();
  }

  protected async waitReady(probe: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${what} exited during start-up (see ${this.runDir})`);
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) { this.proc = undefined; return; }
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const killed = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
    if (!killed) { p.kill('SIGKILL'); await exited; }
    this.proc = undefined;
  }
}

export class PostgresServer extends LocalServer {
  readonly name = 'postgres';
  private ids: Ids | undefined;
  private readonly bin = postgresBinDir();

  constructor(ns: string, appLabel: string, dataDir: string, runDir: string, private readonly stateRoot: string, readonly password: string) {
    super(ns, appLabel, dataDir, runDir);
  }

  /** initdb on first use, as the postgres image's entrypoint does: superuser `postgres`, local trust, host scram. */
  private async init(): Promise<void> {
    this.ids = await postgresIds();
    for (const d of [this.runDir, this.dataDir]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      if (this.ids) { openPath(path.dirname(this.stateRoot), d); chownSync(d, this.ids.uid, this.ids.gid); }
    }
    chmodSync(this.dataDir, 0o700);
    if (existsSync(path.join(this.dataDir, 'PG_VERSION'))) return;
    const pwfile = path.join(this.runDir, 'pwfile');
    writeFileSync(pwfile, this.password + '\n', { mode: 0o600 });
    if (this.ids) chownSync(pwfile, this.ids.uid, this.ids.gid);
    try {
      await run(path.join(this.bin, 'initdb'), ['-D', this.dataDir, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
        { ...(this.ids ?? {}), env: { PATH: DEFAULT_PATH, LANG: 'C.UTF-8' } });
    } finally {
      rmSync(pwfile, { force: true });
    }
    writeFileSync(path.join(this.dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n');
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.init();
    // Chosen after initdb's seconds, just before the server binds it: less time for another
    // process (a test file starting its own servers) to take it meanwhile.
    this.port ||= await this.pickPort();
    this.proc = spawn(path.join(this.bin, 'postgres'), [
      '-D', this.dataDir, '-p', String(this.port), '-k', this.runDir,
      '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'shared_buffers=32MB', '-c', 'max_connections=40', '-c', 'unix_socket_permissions=0777', '-c', 'log_min_messages=warning',
    ], { ...(this.ids ?? {}), stdio: ['ignore', 'ignore', 'ignore'], env: { PATH: DEFAULT_PATH, LANG: 'C.UTF-8' } });
    await this.waitReady(async () => (await run(path.join(this.bin, 'pg_isready'), ['-q', '-h', this.runDir, '-p', String(this.port)]).then(() => true, () => false)), 'PostgreSQL');
  }

  override stop(): Promise<void> {
    return super.stop('SIGINT'); // fast shutdown
  }

  execEnv(): Record<string, string> {
    return {
      PATH: `${this.bin}:${DEFAULT_PATH}`, PGHOST: this.runDir, PGPORT: String(this.port), PGDATA: this.dataDir,
      PG_MAJOR: path.basename(path.dirname(this.bin)),
    };
  }

  /** Runs SQL locally as the superuser (over the socket) and returns psql's unaligned output. */
  query(sql: string, db = 'postgres', user = 'postgres'): Promise<string> {
    return runWithInput(path.join(this.bin, 'psql'), ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', this.runDir, '-p', String(this.port), '-U', user, '-d', db, '-f', '-'], sql);
  }
}

export class MariadbServer extends LocalServer {
  readonly name = 'mysql';
  readonly socket: string;

  constructor(ns: string, appLabel: string, dataDir: string, runDir: string, readonly rootPassword: string) {
    super(ns, appLabel, dataDir, runDir);
    this.socket = path.join(runDir, 'mysqld.sock');
  }

  private userArgs(): string[] {
    return process.getuid?.() === 0 ? ['--user=root'] : [];
  }

  async start(): Promise<void> {
    if (this.running) return;
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(this.dataDir, { recursive: true });
    mkdirSync(path.join(this.runDir, 'home'), { recursive: true });
    // Its own temp directory: servers of tests running side by side shared /tmp, and one's
    // bootstrap lost its temporary tables ("Could not remove temporary table", then ERROR 1051).
    const tmp = path.join(this.runDir, 'tmp');
    mkdirSync(tmp, { recursive: true });
    const fresh = !existsSync(path.join(this.dataDir, 'mysql'));
    if (fresh) {
      await run('mariadb-install-db', ['--no-defaults', `--datadir=${this.dataDir}`, `--tmpdir=${tmp}`, ...this.userArgs(), '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'], { maxBuffer: 16 << 20 });
    }
    // A free port is chosen just before the server binds it (not before the seconds of
    // install-db), and chosen again if another process took it meanwhile: test files start their
    // servers side by side. A port kept from an earlier start (a restart) is the clients' own.
    const chosen = !this.port;
    for (let attempt = 1; ; attempt++) {
      this.port ||= await this.pickPort();
      writeFileSync(path.join(this.runDir, 'home', '.my.cnf'), `[client]\nsocket=${this.socket}\nport=${this.port}\n`);
      const errorLog = path.join(this.runDir, 'error.log');
      const logged = existsSync(errorLog) ? statSync(errorLog).size : 0;
      this.proc = spawn('mariadbd', [
        '--no-defaults', `--datadir=${this.dataDir}`, `--tmpdir=${tmp}`, `--socket=${this.socket}`, `--port=${this.port}`, '--bind-address=127.0.0.1',
        `--pid-file=${path.join(this.runDir, 'mysqld.pid')}`, `--log-error=${errorLog}`, ...this.userArgs(),
        '--skip-name-resolve', '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M', '--performance-schema=OFF', '--skip-log-bin',
        '--innodb-flush-log-at-trx-commit=0', '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci',
      ], { stdio: ['ignore', 'ignore', 'ignore'] });
      const probe = (pw: string) => async (): Promise<boolean> => run('mariadb', ['--no-defaults', '-S', this.socket, '-uroot', '-e', 'SELECT 1'], { env: { ...process.env, MYSQL_PWD: pw } }).then(() => true, () => false);
      try {
        await this.waitReady(probe(fresh ? '' : this.rootPassword), 'MariaDB');
        break;
      } catch (err) {
        // What this start wrote to the server's log says why: kept in the error, since a test's
        // clean-up removes the directory it names.
        const said = existsSync(errorLog) ? readFileSync(errorLog).subarray(logged).toString('utf8').trim().split('\n').filter((l) => /ERROR|error/.test(l)).slice(-3).join(' | ') : '';
        if (chosen && attempt < 3 && /Address already in use|Bind on TCP\/IP port/i.test(said)) {
          this.port = 0;
          continue;
        }
        throw new Error(`${(err as Error).message}${said ? `: ${said}` : ''}`);
      }
    }
    if (fresh) {
      // As the image's entrypoint: root with the secret's password, locally and from anywhere.
      const pw = this.rootPassword.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
      await this.rawQuery(`ALTER USER 'root'@'localhost' IDENTIFIED BY '${pw}'; CREATE USER 'root'@'%' IDENTIFIED BY '${pw}'; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;`, '');
    }
  }

  execEnv(): Record<string, string> {
    // Debian's /etc/mysql client config names the machine's own socket and wins over MYSQL_UNIX_PORT;
    // ~/.my.cnf is read last, so the pod's HOME carries one that points at this server.
    return { HOME: path.join(this.runDir, 'home'), MYSQL_UNIX_PORT: this.socket, MYSQL_TCP_PORT: String(this.port), MARIADB_MAJOR: '10.11' };
  }

  private rawQuery(sql: string, pw: string, db?: string): Promise<string> {
    return runWithInput('mariadb', ['--no-defaults', '-S', this.socket, '-uroot', '-N', '-B', ...(db ? [db] : [])], sql, { ...process.env, MYSQL_PWD: pw });
  }

  /** Runs SQL as root (password through MYSQL_PWD, never argv) and returns the tab-separated rows. */
  query(sql: string, db?: string): Promise<string> {
    return this.rawQuery(sql, this.rootPassword, db);
  }
}

export class RedisServer extends LocalServer {
  readonly name = 'redis';
  private readonly binDir: string;
  /** `--appendonly` at the next start (as a pod spec's args would say); tests of AOF set it. */
  appendonly = false;
  /** Runs before each start of the server process (tests: a fault on the data the pod starts on). */
  beforeStart: (() => void | Promise<void>) | undefined;

  constructor(ns: string, appLabel: string, dataDir: string, runDir: string) {
    super(ns, appLabel, dataDir, runDir);
    this.binDir = path.join(runDir, 'bin');
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.port ||= await freePort();
    mkdirSync(this.dataDir, { recursive: true });
    mkdirSync(this.binDir, { recursive: true });
    await this.beforeStart?.();
    // In the image redis-cli reaches the server on its default port; here the port is a free one.
    writeFileSync(path.join(this.binDir, 'redis-cli'), `#!/bin/sh\nexec /usr/bin/redis-cli -p ${this.port} "$@"\n`, { mode: 0o755 });
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dataDir, '--dbfilename', 'dump.rdb',
      '--save', '', '--appendonly', this.appendonly ? 'yes' : 'no', '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'warning', '--logfile', path.join(this.runDir, 'redis.log')], { stdio: ['ignore', 'ignore', 'ignore'] });
    await this.waitReady(async () => (await this.cli('PING').catch(() => '')) === 'PONG', 'Redis');
  }

  override async stop(): Promise<void> {
    // Persist like a redis pod with a volume does on SIGTERM when saving is configured.
    if (this.running) await this.cli('SAVE').catch(() => undefined);
    await super.stop('SIGTERM');
  }

  execEnv(): Record<string, string> {
    return { PATH: `${this.binDir}:${DEFAULT_PATH}`, REDIS_PORT: String(this.port) };
  }

  async cli(...args: string[]): Promise<string> {
    const r = await run('redis-cli', ['-p', String(this.port), ...args], { maxBuffer: 64 << 20 });
    return r.stdout.trim();
  }
}
