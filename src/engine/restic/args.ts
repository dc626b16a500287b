// restic command-line arguments built from typed options, each value checked first: restic
// splits tags on commas, and a bad value must fail with its path before restic runs.
import { StorageValidationError } from '../../plugins/storage/types.js';
import type { ForgetTarget } from './types.js';

export const SNAPSHOT_ID = /^[0-9a-f]{8,64}$/;

export function invalid(path: string, message: string): StorageValidationError {
  return new StorageValidationError([{ path, message }]);
}

export function checkTag(tag: string): void {
  if (!tag || tag.includes(',') || /\s/.test(tag)) throw invalid('tags', `invalid tag "${tag}": no commas or spaces`);
}

export function backupArgs(opts: { filename: string; host: string; tags?: string[] }): { filename: string; args: string[] } {
  const filename = opts.filename.replace(/^\/+/, '');
  if (!filename || filename.includes('\0') || filename.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw invalid('filename', 'must be a relative path without "." or ".." components');
  }
  if (!opts.host || /\s/.test(opts.host)) throw invalid('host', 'must be a non-empty name without spaces');
  const tags = opts.tags ?? [];
  tags.forEach(checkTag);
  return { filename, args: ['--stdin', '--stdin-filename', filename, '--host', opts.host, ...tags.flatMap((t) => ['--tag', t])] };
}

export function forgetArgs(target: ForgetTarget, opts: { prune?: boolean; dryRun?: boolean }): string[] {
  const args: string[] = [];
  if (opts.prune) args.push('--prune');
  if (opts.dryRun) args.push('--dry-run');
  if ('snapshotIds' in target) {
    for (const id of target.snapshotIds) if (!SNAPSHOT_ID.test(id)) throw invalid('snapshotIds', 'must be hex snapshot ids');
    return [...args, ...target.snapshotIds];
  }
  const p = target.policy;
  const rules: Array<[string, number | undefined]> = [
    ['--keep-last', p.keepLast], ['--keep-hourly', p.keepHourly], ['--keep-daily', p.keepDaily],
    ['--keep-weekly', p.keepWeekly], ['--keep-monthly', p.keepMonthly], ['--keep-yearly', p.keepYearly],
  ];
  let keeps = 0;
  for (const [flag, n] of rules) {
    if (n === undefined || n === null) continue;
    if (!Number.isInteger(n) || n < 0) throw invalid(`policy.${flag.slice(2)}`, 'must be a non-negative integer');
    if (n > 0) (args.push(flag, String(n)), keeps++);
  }
  if (p.keepWithin) {
    if (!/^(\d+[yMdwhm])+$/.test(p.keepWithin)) throw invalid('policy.keepWithin', 'must be a duration such as 30d or 1y6m');
    args.push('--keep-within', p.keepWithin);
    keeps++;
  }
  for (const t of p.keepTags ?? []) (checkTag(t), args.push('--keep-tag', t), keeps++);
  // restic forgets nothing without a rule, but say so rather than run for nothing.
  if (keeps === 0) throw invalid('policy', 'keeps nothing: set at least one keep rule');
  for (const t of target.tags ?? []) (checkTag(t), args.push('--tag', t));
  if (target.host) args.push('--host', target.host);
  if (target.groupBy !== undefined) args.push('--group-by', target.groupBy);
  return args;
}

export function checkArgs(readDataSubset: number | string | undefined): string[] {
  if (readDataSubset === undefined) return [];
  const subset = typeof readDataSubset === 'number' ? `${readDataSubset}%` : readDataSubset;
  if (!/^(\d+(\.\d+)?%|\d+\/\d+)$/.test(subset)) throw invalid('readDataSubset', 'must be a percentage or n/t');
  return [`--read-data-subset=${subset}`];
}
