// Reading the Wild Central data directory: good files parse, and a broken file breaks only
// the instance or app it belongs to, with an error naming the file and the path inside it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WildStore } from '../../src/wild/store.js';
import { ValidationError } from '../../src/errors.js';
import { tempDataDir, type TempDataDir } from '../helpers/data-dir.js';

let data: TempDataDir;
beforeEach(async () => { data = await tempDataDir(); });
afterEach(async () => { await data.cleanup(); });

describe('WildStore', () => {
  it('lists instances and apps of the example data directory', async () => {
    const store = new WildStore(data.dir);
    const [home] = await store.instances();
    expect(home?.name).toBe('home');
    expect(home?.problems).toEqual([]);
    expect(home?.config.apps?.gitea?.dbName).toBe('gitea');
    const apps = await store.apps(home!);
    expect(apps.map((a) => a.name)).toEqual(['blog', 'ghost', 'gitea', 'immich', 'mysql', 'postgres', 'redis']);
    expect(apps.every((a) => a.problems.length === 0)).toBe(true);
    expect((await store.secrets('home')).apps?.gitea?.dbPassword).toBe('example-gitea-db-password');
  });

  it('reports malformed YAML in config.yaml with the file and line, and other instances still answer', async () => {
    await data.write('instances/broken/config.yaml', 'cloud:\n  backup: [unclosed\n');
    const store = new WildStore(data.dir);
    const all = await store.instances();
    const broken = all.find((i) => i.name === 'broken')!;
    expect(broken.problems[0]?.file).toBe('instances/broken/config.yaml');
    expect(broken.problems[0]?.path).toMatch(/^line \d+/);
    expect(all.find((i) => i.name === 'home')?.problems).toEqual([]);
  });

  it('reports a wrongly typed value with its path inside the file', async () => {
    await data.write('instances/typed/config.yaml', 'cloud:\n  backup:\n    retention:\n      keepDaily: "seven"\n');
    const inst = await new WildStore(data.dir).instance('typed');
    expect(inst?.problems).toEqual([
      expect.objectContaining({ file: 'instances/typed/config.yaml', path: 'cloud.backup.retention.keepDaily' }),
    ]);
  });

  it('reports a missing config.yaml', async () => {
    await data.write('instances/empty/apps/.keep', '');
    const inst = await new WildStore(data.dir).instance('empty');
    expect(inst?.problems).toEqual([{ file: 'instances/empty/config.yaml', path: '', message: 'file is missing' }]);
  });

  it('marks an app whose manifest has a field of the wrong type, and the other apps are fine', async () => {
    await data.write('instances/home/apps/badapp/manifest.yaml', 'name: badapp\nrequires: postgres\n');
    const store = new WildStore(data.dir);
    const home = (await store.instance('home'))!;
    const apps = await store.apps(home);
    const bad = apps.find((a) => a.name === 'badapp')!;
    expect(bad.manifest).toBeNull();
    expect(bad.problems).toEqual([expect.objectContaining({ file: 'instances/home/apps/badapp/manifest.yaml', path: 'requires' })]);
    expect(apps.filter((a) => a.name !== 'badapp').every((a) => a.manifest !== null)).toBe(true);
  });

  it('refuses YAML whose anchors expand without bound, and huge files', async () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`);
    await data.write('instances/bomb/config.yaml', bomb.join('\n') + '\n');
    await data.write('instances/huge/config.yaml', `# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    const store = new WildStore(data.dir);
    const bombInst = (await store.instance('bomb'))!;
    expect(bombInst.problems[0]?.message).toMatch(/alias/i);
    const huge = (await store.instance('huge'))!;
    expect(huge.problems[0]?.message).toMatch(/larger than/);
  });

  it('rejects names that are not DNS-1123 labels before touching the disk', async () => {
    const store = new WildStore(data.dir);
    await expect(store.instance('../../etc')).rejects.toBeInstanceOf(ValidationError);
    const home = (await store.instance('home'))!;
    await expect(store.app(home, '../../etc')).rejects.toBeInstanceOf(ValidationError);
    await expect(store.app(home, 'a;rm -rf /')).rejects.toBeInstanceOf(ValidationError);
    expect(await store.app(home, 'nope')).toBeNull();
  });

  it('ignores directories under instances/ whose names are not valid instance names', async () => {
    await data.write('instances/Not_Valid/config.yaml', 'cloud: {}\n');
    expect(await new WildStore(data.dir).instanceNames()).toEqual(['home']);
  });
});
