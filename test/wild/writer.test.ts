// Writing config.yaml and secrets.yaml: comments and unrelated keys survive, the write is
// atomic, secrets stay 0600, and concurrent writers (even in other processes) do not lose updates.
import { readFile, stat, writeFile, readdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { setPath, updateYamlFile, withFileLock } from '../../src/wild/writer.js';
import { ConfigFileError } from '../../src/errors.js';
import { tempDataDir, type TempDataDir } from '../helpers/data-dir.js';

let data: TempDataDir;
beforeEach(async () => { data = await tempDataDir(); });
afterEach(async () => { await data.cleanup(); });

describe('updateYamlFile', () => {
  it('changes one key and keeps comments and unrelated keys', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    await updateYamlFile(file, (doc) => setPath(doc, ['cloud', 'backup', 'repository'], 's3:https://s3.example/bucket'), 0o644);
    const text = await readFile(file, 'utf8');
    expect(text).toContain('# A sample Wild Central instance');
    expect(text).toContain('# No repository: the embedded default');
    const parsed = parse(text);
    expect(parsed.cloud.backup.repository).toBe('s3:https://s3.example/bucket');
    expect(parsed.cloud.backup.retention.keepDaily).toBe(7);
    expect(parsed.apps.gitea.dbName).toBe('gitea');
  });

  it('writes into an empty flow map (`backup: {}`) as block YAML, and keeps a filled flow map as its author wrote it', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    await writeFile(file, 'cloud:\n  backup: {}\n  dns: { ip: 10.0.0.1 }\n');
    await updateYamlFile(file, (doc) => {
      setPath(doc, ['cloud', 'backup', 'schedules'], [{ name: 'nightly', cron: '0 3 * * *', action: 'backup', apps: ['gitea'] }]);
      setPath(doc, ['cloud', 'dns', 'port'], 53);
    }, 0o644);
    const text = await readFile(file, 'utf8');
    expect(text).toBe([
      'cloud:',
      '  backup:',
      '    schedules:',
      '      - name: nightly',
      '        cron: 0 3 * * *',
      '        action: backup',
      '        apps:',
      '          - gitea',
      '  dns: { ip: 10.0.0.1, port: 53 }',
      '',
    ].join('\n'));
    expect(parse(text).cloud.backup.schedules[0].cron).toBe('0 3 * * *');
  });

  it('keeps secrets.yaml at mode 0600, also when it is created', async () => {
    const existing = path.join(data.instanceDir(), 'secrets.yaml');
    await updateYamlFile(existing, (doc) => setPath(doc, ['cloud', 'backup', 'password'], 'pw-1'), 0o600);
    expect((await stat(existing)).mode & 0o777).toBe(0o600);
    const created = path.join(data.dir, 'instances', 'new', 'secrets.yaml');
    await updateYamlFile(created, (doc) => setPath(doc, ['cloud', 'backup', 'password'], 'pw-2'), 0o600);
    expect((await stat(created)).mode & 0o777).toBe(0o600);
    expect(parse(await readFile(created, 'utf8')).cloud.backup.password).toBe('pw-2');
  });

  it('never overwrites a file it cannot parse, and leaves no temp file', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    await writeFile(file, 'cloud: [broken\n');
    await expect(updateYamlFile(file, (doc) => setPath(doc, ['x'], 1), 0o644)).rejects.toBeInstanceOf(ConfigFileError);
    expect(await readFile(file, 'utf8')).toBe('cloud: [broken\n');
    expect((await readdir(data.instanceDir())).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
  });

  it('serialises concurrent writers in one process: no update is lost', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        updateYamlFile(file, (doc) => setPath(doc, ['counters', `c${i}`], i), 0o644),
      ),
    );
    const parsed = parse(await readFile(file, 'utf8'));
    expect(Object.keys(parsed.counters)).toHaveLength(20);
  });

  it('serialises writers across processes through the lock file', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    const script = `
      import { updateYamlFile, setPath } from ${JSON.stringify(path.resolve('src/wild/writer.ts'))};
      const [file, tag] = process.argv.slice(-2);
      for (let i = 0; i < 10; i++) await updateYamlFile(file, (doc) => setPath(doc, ['procs', tag + '-' + i], i), 0o644);
    `;
    const run = promisify(execFile);
    await Promise.all(['a', 'b', 'c'].map((tag) => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, file, tag])));
    const parsed = parse(await readFile(file, 'utf8'));
    expect(Object.keys(parsed.procs)).toHaveLength(30);
  });

  it('breaks a lock left by a process that died', async () => {
    const file = path.join(data.instanceDir(), 'config.yaml');
    await writeFile(`${file}.lock`, `999999 ${Date.now()}\n`);
    const started = Date.now();
    await withFileLock(file, async () => undefined);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
