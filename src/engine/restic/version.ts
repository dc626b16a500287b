// restic's version, detected once per binary, and the features that depend on it
// (Debian 12 ships 0.14, Debian 13 ships 0.18).
import { execFile } from 'node:child_process';
import { ResticError } from './errors.js';

export interface ResticVersion {
  major: number;
  minor: number;
  patch: number;
  /** restic's own line: "restic 0.14.0 compiled with go1.19.8 on linux/amd64". */
  raw: string;
}

export interface ResticFeatures {
  /** `init --json` prints a JSON line (0.15). */
  jsonInit: boolean;
  /** `stats --mode raw-data` reports compression (0.15). */
  compressionStats: boolean;
  /** `--retry-lock` (0.16). */
  retryLock: boolean;
  /** backup summaries carry the full snapshot id (0.17; 0.14 prints the short id). */
  fullSnapshotIdInSummary: boolean;
  /** Exit codes 10/11/12 for missing repository, lock failure, wrong password (0.17). */
  namedExitCodes: boolean;
  /** `check --json` prints a summary (0.18). */
  jsonCheck: boolean;
}

export function atLeast(v: ResticVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

export function featuresOf(v: ResticVersion): ResticFeatures {
  return {
    jsonInit: atLeast(v, 0, 15),
    compressionStats: atLeast(v, 0, 15),
    retryLock: atLeast(v, 0, 16),
    fullSnapshotIdInSummary: atLeast(v, 0, 17),
    namedExitCodes: atLeast(v, 0, 17),
    jsonCheck: atLeast(v, 0, 18),
  };
}

export function parseResticVersion(text: string): ResticVersion | undefined {
  const m = /restic\s+(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), raw: text.trim().split('\n')[0] ?? '' };
}

const detected = new Map<string, Promise<ResticVersion>>();

/** Runs `restic version` once per binary path and caches the answer for the process. */
export function detectResticVersion(binary: string): Promise<ResticVersion> {
  let hit = detected.get(binary);
  if (!hit) {
    hit = new Promise<ResticVersion>((resolve, reject) => {
      execFile(binary, ['version'], { timeout: 10_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, (err, stdout) => {
        const version = parseResticVersion(stdout);
        if (version) resolve(version);
        else reject(new ResticError(`cannot run restic (${binary}): ${err ? err.message : 'unrecognised version output'}`, { cause: err }));
      });
    });
    hit.catch(() => detected.delete(binary));
    detected.set(binary, hit);
  }
  return hit;
}
