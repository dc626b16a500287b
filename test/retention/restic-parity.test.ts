// Proof that applyRetentionPolicy decides exactly as restic 0.14's `forget` does: the same
// snapshots go into a real local repository and into our function, and both answers must agree.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetentionPolicy } from '../../src/engine/retention/index.js';
import type { RetentionPolicy } from '../../src/engine/retention/index.js';
import { prng } from '../../src/sim/random.js';

interface ResticSnapshot {
  id: string;
  time: string;
  tags?: string[];
}
interface ResticForgetGroup {
  keep: ResticSnapshot[] | null;
  remove: ResticSnapshot[] | null;
  reasons: { snapshot: ResticSnapshot; matches: string[] }[] | null;
}

let dir = '';
const PASSWORD = 'parity-test-password';

function restic(args: string[], opts: { stdin?: string; tz?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('restic', ['--cache-dir', path.join(dir, 'cache'), ...args], {
      // The password goes through the environment, never argv.
      env: {
        ...process.env,
        RESTIC_PASSWORD_FILE: undefined,
        RESTIC_PASSWORD_COMMAND: undefined,
        RESTIC_REPOSITORY: path.join(dir, 'repo'),
        RESTIC_PASSWORD: PASSWORD,
        TZ: opts.tz ?? 'UTC',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`restic ${args[0]} exited ${code}: ${err}`)),
    );
    child.stdin.end(opts.stdin ?? '');
  });
}

async function inPool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}


const fmt = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/** restic `--time` values (wall clock in `tz`), with the zone restic runs in. */
function history(): { time: string; tz: string }[] {
  const utc = [
    // ISO week 1 of 2020 starts in December 2019; year boundary.
    '2019-12-20 10:00:00', '2019-12-30 08:00:00', '2019-12-31 23:59:59', '2020-01-01 00:00:00', '2020-01-01 00:00:01',
    // Leap day and month boundaries.
    '2020-02-29 23:30:00', '2020-03-01 00:10:00', '2020-06-30 23:59:59', '2020-07-01 00:00:00',
    // Several in one hour, and the next hour.
    '2020-03-15 14:05:00', '2020-03-15 14:20:00', '2020-03-15 14:59:59', '2020-03-15 15:00:00',
    // ISO week 53 of 2020 (Mon 2020-12-28 .. Sun 2021-01-03) across the year boundary.
    '2020-12-27 12:00:00', '2020-12-28 00:00:00', '2020-12-31 21:00:00', '2021-01-01 00:30:00',
    '2021-01-02 12:00:00', '2021-01-03 23:59:59', '2021-01-04 00:00:00',
    // 2022-01-01 and -02 are still in ISO week 52 of 2021.
    '2021-12-31 22:00:00', '2022-01-01 01:00:00', '2022-01-02 18:00:00', '2022-01-03 00:00:01',
    // Around the DST change in Berlin (for the interleaved Berlin snapshots below).
    '2021-06-09 23:00:00', '2021-06-09 20:00:00', '2021-03-28 00:45:00',
  ];
  // Clusters at random days of 2020-2021, with a gap (no snapshot from August to October 2020).
  const random = prng(20201231);
  const start = Date.UTC(2020, 0, 5);
  const span = Date.UTC(2021, 11, 20) - start;
  const gap = [Date.UTC(2020, 7, 1), Date.UTC(2020, 10, 1)];
  while (utc.length < 52) {
    const day = start + Math.floor(random() * (span / 86_400_000)) * 86_400_000;
    if (day >= (gap[0] as number) && day < (gap[1] as number)) continue;
    const hour = Math.floor(random() * 24);
    const count = 1 + Math.floor(random() * 4);
    for (let i = 0; i < count; i++) {
      utc.push(fmt(day + hour * 3_600_000 + Math.floor(random() * 150) * 60_000 + Math.floor(random() * 60) * 1000));
    }
  }
  // A dense last week: several a day, several an hour.
  for (let d = 0; d < 4; d++) {
    for (const h of [1, 9, 9.5]) utc.push(fmt(Date.UTC(2022, 0, 4 + d) + h * 3_600_000 + d * 7000));
  }
  // Snapshots written in another zone keep their offset: restic buckets them in that offset.
  const berlin = [
    '2020-12-31 23:30:00', // 22:30Z: 2020 in both zones
    '2021-01-01 00:15:00', // 2020-12-31 23:15Z: 2021 in Berlin, 2020 in UTC
    '2021-03-28 01:30:00', // +01:00, the night of the switch
    '2021-03-28 03:30:00', // +02:00
    '2021-06-10 00:30:00', // 2021-06-09 22:30Z: between two UTC snapshots of 06-09, its day is 06-10
    '2021-11-01 00:15:00', // 2021-10-31 23:15Z: November in Berlin
  ];
  return [...utc.map((time) => ({ time, tz: 'UTC' })), ...berlin.map((time) => ({ time, tz: 'Europe/Berlin' }))];
}

const POLICIES: { name: string; policy: RetentionPolicy; flags: string[] }[] = [
  { name: 'keepLast only', policy: { keepLast: 5 }, flags: ['--keep-last', '5'] },
  { name: 'hourly', policy: { keepHourly: 12 }, flags: ['--keep-hourly', '12'] },
  {
    name: 'Wild Cloud default (7 daily, 4 weekly, 6 monthly, 2 yearly)',
    policy: { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, keepYearly: 2 },
    flags: ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '6', '--keep-yearly', '2'],
  },
  { name: 'weekly across year boundaries and week 53', policy: { keepWeekly: 120 }, flags: ['--keep-weekly', '120'] },
  { name: 'every day (mixed time zones)', policy: { keepDaily: 1000 }, flags: ['--keep-daily', '1000'] },
  {
    name: 'monthly and yearly',
    policy: { keepMonthly: 30, keepYearly: 5 },
    flags: ['--keep-monthly', '30', '--keep-yearly', '5'],
  },
  {
    name: 'last, hourly and daily together',
    policy: { keepLast: 3, keepHourly: 30, keepDaily: 20 },
    flags: ['--keep-last', '3', '--keep-hourly', '30', '--keep-daily', '20'],
  },
  { name: 'few weekly and one last', policy: { keepLast: 1, keepWeekly: 3 }, flags: ['--keep-last', '1', '--keep-weekly', '3'] },
  { name: 'yearly only', policy: { keepYearly: 10 }, flags: ['--keep-yearly', '10'] },
  {
    name: 'everything at once',
    policy: { keepLast: 2, keepHourly: 6, keepDaily: 10, keepWeekly: 8, keepMonthly: 12, keepYearly: 3 },
    flags: ['-l', '2', '-H', '6', '-d', '10', '-w', '8', '-m', '12', '-y', '3'],
  },
];

let snapshots: { id: string; time: string }[] = [];
const forgets = new Map<string, ResticForgetGroup[]>();
const ourId = (sn: ResticSnapshot): string => {
  const tag = sn.tags?.find((t) => t.startsWith('id:'));
  if (!tag) throw new Error(`snapshot ${sn.id} has no id tag`);
  return tag.slice(3);
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wild-retention-parity-'));
  await restic(['init', '-q']);
  const entries = history().map((e, n) => ({ ...e, n }));
  // Each restic process spends ~0.2 s waiting on its lock and ~0.2 s of CPU deriving the key
  // (scrypt): a few at once fill two cores without thrashing them.
  await inPool(entries, 6, (e) =>
    restic(
      ['backup', '-q', '--stdin', '--stdin-filename', 'x', '--host', 'parity', '--time', e.time, '--tag', `id:${e.n}`],
      { stdin: String(e.n), tz: e.tz },
    ),
  );
  const listed = JSON.parse(await restic(['snapshots', '--json'])) as ResticSnapshot[];
  snapshots = listed.map((sn) => ({ id: ourId(sn), time: sn.time }));
  // forget --dry-run --no-lock takes no lock: ask restic about every policy at once.
  await inPool(POLICIES, 4, async (p) => {
    forgets.set(p.name, JSON.parse(await restic(['forget', '--no-lock', '--dry-run', '--json', ...p.flags])) as ResticForgetGroup[]);
  });
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('retention policy parity with restic forget', () => {
  it('builds a varied history with distinct instants and recorded offsets', () => {
    expect(snapshots.length).toBeGreaterThanOrEqual(65);
    expect(new Set(snapshots.map((s) => Date.parse(s.time))).size).toBe(snapshots.length);
    expect(snapshots.some((s) => s.time.endsWith('+01:00'))).toBe(true);
    expect(snapshots.some((s) => s.time.endsWith('+02:00'))).toBe(true);
  });

  it.each(POLICIES)('$name: keeps the same snapshots for the same reasons', ({ name, policy }) => {
    const groups = forgets.get(name) ?? [];
    expect(groups).toHaveLength(1);
    const group = groups[0] as ResticForgetGroup;
    const resticKeep = (group.keep ?? []).map(ourId);
    const resticReasons = new Map((group.reasons ?? []).map((r) => [ourId(r.snapshot), r.matches]));

    const ours = applyRetentionPolicy(snapshots, policy);

    // Same set, same order (newest first), same reasons.
    expect(ours.keep.map((s) => s.id)).toEqual(resticKeep);
    expect(ours.remove.map((s) => s.id).sort()).toEqual((group.remove ?? []).map(ourId).sort());
    expect(new Map([...ours.reasons])).toEqual(resticReasons);
    // Every policy here removes something: the comparison is not a trivial "keep all".
    expect(ours.remove.length).toBeGreaterThan(0);
  });
});
