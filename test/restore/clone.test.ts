// Restoring into another app (a clone with its own database and PVCs): the clone gets the source's
// data, the source stays untouched. Run on a cluster that offers only the v4 exec subprotocol, so
// stdin end-of-file reaches pg_restore and tar through the length-bounded fallback.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../../src/sim/objects.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'], execProtocols: ['v4.channel.k8s.io'] });
  // A second gitea, "gitea-copy", in its own namespace with its own PVC and database name.
  const appsDir = path.join(s.sim.instanceDir, 'apps');
  const objects: KubeObject[] = [];
  for (const f of await readdir(path.join(appsDir, 'gitea'))) {
    if (!f.endsWith('.yaml') || f === 'manifest.yaml') continue;
    for (const doc of parseAllDocuments(await readFile(path.join(appsDir, 'gitea', f), 'utf8'))) {
      const o = doc.toJS() as KubeObject | null;
      if (!o?.kind || !o.metadata || o.kind === 'Secret' || o.kind === 'Kustomization') continue;
      if (o.kind === 'Namespace') o.metadata.name = 'gitea-copy';
      else o.metadata.namespace = 'gitea-copy';
      objects.push(o);
    }
  }
  s.sim.kube.apply(objects);
  const manifest = (await readFile(path.join(appsDir, 'gitea', 'manifest.yaml'), 'utf8')).replace(/^name: gitea$/m, 'name: gitea-copy');
  const { mkdir, writeFile } = await import('node:fs/promises');
  await mkdir(path.join(appsDir, 'gitea-copy'));
  await writeFile(path.join(appsDir, 'gitea-copy', 'manifest.yaml'), manifest);
  await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['apps', 'gitea-copy'], { dbName: 'gitea_copy', dbUser: 'gitea' }), 0o644);
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => { await s?.close(); });

describe('restore into another app', () => {
  it('clones gitea into gitea-copy over v4 exec: same rows, same files, source untouched', async () => {
    const pg = s.sim.databases.postgres!;
    const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const b = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
    const srcDb = await pgTableDigests(pg, 'gitea');
    const srcFiles = await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED });

    const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, targetApp: "gitea-copy" }) { ${OP_FIELDS} } }`, { id: b.data!.instance.app.latestBackup.id });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea_copy')).toEqual(srcDb);
    expect(await treeDigest(s.sim.pvcDir('gitea-copy', 'gitea-data'), { skip: NESTED })).toEqual(srcFiles);
    // The clone's tables belong to its own role; the source is as it was.
    expect((await pg.query(`select distinct tableowner from pg_tables where schemaname = 'public'`, 'gitea_copy')).trim()).toBe('gitea');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(srcDb);
    expect(await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED })).toEqual(srcFiles);
  }, 240_000);
});
