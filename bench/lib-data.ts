// Data of the backup benchmark: text rows in the app's PostgreSQL database (INSERT ... SELECT
// generate_series, ~1 KiB a row, not toasted), and a photo library on its PVC: thousands of small
// files of random bytes (16-240 KiB, like JPEGs) and a few large ones (like videos). Everything is
// deterministic in size and name; contents are random (incompressible, as photos are).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { PostgresServer } from '../src/sim/databases.js';
import { prng, writeRandomFile as writeRandom } from '../src/sim/random.js';

const TABLE = 'asset_exif';
const md5s = Array.from({ length: 24 }, (_, k) => `md5(i::text || '${String.fromCharCode(97 + k)}')`).join(' || ');

function insertSql(from: number, to: number): string {
  return `INSERT INTO ${TABLE} (id, asset_id, original_path, make, model, description, payload, created_at)
SELECT i, md5(i::text)::uuid,
  'upload/library/admin/' || (2015 + i % 10) || '/' || lpad((1 + i % 12)::text, 2, '0') || '/IMG_' || lpad(i::text, 8, '0') || '.jpg',
  (ARRAY['Canon','Nikon','Sony','Apple','Google','Fujifilm'])[1 + i % 6],
  (ARRAY['EOS R6','Z6 II','A7 IV','iPhone 15 Pro','Pixel 8','X-T5'])[1 + (i / 7) % 6],
  'Taken near ' || (ARRAY['Lisbon','Oslo','Kyoto','Quito','Accra','Perth','Tucson'])[1 + (i / 3) % 7] || ' at 1/' || (60 + i % 4000) || ' s, f/' || (14 + i % 40) / 10.0 || ', ISO ' || (100 * (1 + i % 64)),
  ${md5s},
  timestamptz '2015-01-01 00:00:00+00' + i * interval '37 seconds'
FROM generate_series(${from}, ${to}) AS i;`;
}

export interface DbSeedResult { rows: number; dbBytes: number; seconds: number }

/** Grows `db` (owned by `owner`) with rows until pg_database_size reaches `targetBytes`. Two writers at once. */
export async function growPostgres(pg: PostgresServer, db: string, owner: string, targetBytes: number, log: (s: string) => void): Promise<DbSeedResult> {
  const t0 = performance.now();
  await pg.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (id bigint PRIMARY KEY, asset_id uuid NOT NULL, original_path text NOT NULL, make text, model text, description text, payload text, created_at timestamptz);`, db, owner);
  const size = async (): Promise<number> => Number((await pg.query('SELECT pg_database_size(current_database())', db)).trim());
  let next = Number((await pg.query(`SELECT coalesce(max(id), 0) FROM ${TABLE}`, db)).trim()) + 1;
  let current = await size();
  const rowBytes = 1070; // measured: heap + index per row
  while (current < targetBytes) {
    const want = Math.ceil((targetBytes - current) / rowBytes);
    const batch = Math.max(1000, Math.min(100_000, Math.ceil(want / 2)));
    const a = next;
    const b = next + batch;
    next += 2 * batch;
    await Promise.all([pg.query(insertSql(a, a + batch - 1), db, owner), pg.query(insertSql(b, b + batch - 1), db, owner)]);
    current = await size();
    log(`  postgres ${db}: ${(current / 1024 / 1024).toFixed(0)} MiB`);
  }
  await pg.query(`VACUUM (ANALYZE) ${TABLE}; CHECKPOINT;`, db);
  const rows = Number((await pg.query(`SELECT count(*) FROM ${TABLE}`, db)).trim());
  return { rows, dbBytes: await size(), seconds: (performance.now() - t0) / 1000 };
}

export interface VolumePlan { smallFiles: number; smallBytes: number; largeFiles: number; largeFileBytes: number }

const KiB = 1024;
const MiB = 1024 * KiB;

/** Half the bytes in small files (16-240 KiB, 128 KiB on average), half in large ones (size/16, at most 64 MiB each). */
export function planVolume(totalBytes: number): VolumePlan {
  const largeFileBytes = Math.min(64 * MiB, Math.max(MiB, Math.floor(totalBytes / 16 / MiB) * MiB));
  const largeFiles = Math.max(1, Math.round(totalBytes / 2 / largeFileBytes));
  const smallFiles = Math.max(1, Math.round((totalBytes - largeFiles * largeFileBytes) / (128 * KiB)));
  let smallBytes = 0;
  for (let i = 0; i < smallFiles; i++) smallBytes += smallFileSize(i);
  return { smallFiles, smallBytes, largeFiles, largeFileBytes };
}

function smallFileSize(i: number): number {
  return 16 * KiB + Math.floor(prng(i + 1)() * 224 * KiB);
}

function smallFilePath(dir: string, i: number): string {
  const year = 2015 + (i % 10);
  const day = `${year}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (Math.floor(i / 12) % 28)).padStart(2, '0')}`;
  return path.join(dir, 'library', 'admin', String(year), day, `IMG_${String(i).padStart(6, '0')}.jpg`);
}

const largeFilePath = (dir: string, i: number): string => path.join(dir, 'encoded-video', 'admin', `VID_${String(i).padStart(4, '0')}.mp4`);

const buf = Buffer.allocUnsafe(4 * MiB);

const writeRandomFile = (file: string, bytes: number): void => writeRandom(file, bytes, buf);


const sizeOf = (f: string): number => { try { return statSync(f).size; } catch { return -1; } };

/** Writes the plan's files that are not there yet with their size (so a volume grows from 1 GiB to 4 GiB in place). */
export function growVolume(dir: string, totalBytes: number): VolumePlan & { written: number } {
  const plan = planVolume(totalBytes);
  let written = 0;
  for (let i = 0; i < plan.smallFiles; i++) {
    const f = smallFilePath(dir, i);
    const n = smallFileSize(i);
    if (sizeOf(f) !== n) { writeRandomFile(f, n); written += n; }
  }
  for (let i = 0; i < plan.largeFiles; i++) {
    const f = largeFilePath(dir, i);
    if (sizeOf(f) !== plan.largeFileBytes) { writeRandomFile(f, plan.largeFileBytes); written += plan.largeFileBytes; }
  }
  return { ...plan, written };
}

export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Rewrites `fraction` of the volume's files (chosen at random, seeded) with new random bytes of the same size. */
export function changeFiles(dir: string, fraction: number, seed: number): { files: number; bytes: number; of: number; large: number } {
  const all = listFiles(dir);
  const k = Math.max(1, Math.ceil(all.length * fraction));
  const rand = prng(seed);
  const pool = [...all];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  let bytes = 0;
  let large = 0;
  for (const f of pool.slice(0, k)) {
    const n = statSync(f).size;
    writeRandomFile(f, n);
    bytes += n;
    if (n > 4 * MiB) large++;
  }
  return { files: k, bytes, of: all.length, large };
}
