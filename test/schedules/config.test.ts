// parseSchedules: cloud.backup.schedules as written in config.yaml, every problem with its path.
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseSchedules } from '../../src/engine/schedules/index.js';

describe('parseSchedules', () => {
  it('reads a valid list from YAML and names unnamed entries', () => {
    const yaml = `
- cron: "0 3 * * *"
  action: backup
- name: weekly-gitea
  cron: "@weekly"
  action: backup
  apps: [gitea, immich, gitea]
- cron: "30 4 * * 0"
  action: retention
- cron: "@monthly"
  action: check
  readDataPercent: 2.5
`;
    const result = parseSchedules(parseYaml(yaml));
    expect(result).toEqual({
      ok: true,
      schedules: [
        { name: 'backup-1', cron: '0 3 * * *', action: 'backup' },
        { name: 'weekly-gitea', cron: '@weekly', action: 'backup', apps: ['gitea', 'immich'] },
        { name: 'retention-3', cron: '30 4 * * 0', action: 'retention' },
        { name: 'check-4', cron: '@monthly', action: 'check', readDataPercent: 2.5 },
      ],
    });
  });

  it('treats absent schedules as none', () => {
    expect(parseSchedules(undefined)).toEqual({ ok: true, schedules: [] });
    expect(parseSchedules(null)).toEqual({ ok: true, schedules: [] });
  });

  it('reports every problem with its path', () => {
    const result = parseSchedules([
      { cron: '0 3 * * *', action: 'backup', apps: ['Gitea', 'ok-app'] },
      { cron: '0 3 * *', action: 'check', readDataPercent: 150 },
      { cron: '@daily', action: 'prune' },
      { cron: '@daily', action: 'retention', apps: ['gitea'], readDataPercent: 5, apss: ['x'] },
      { name: 'n', cron: '@daily', action: 'backup' },
      { name: 'n', cron: '@daily', action: 'backup', apps: [] },
      'not an object',
    ]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const paths = result.issues.map((i) => i.path).sort();
    expect(paths).toEqual(
      [
        'schedules.0.apps.0',
        'schedules.1.cron',
        'schedules.1.readDataPercent',
        'schedules.2.action',
        'schedules.3.apps',
        'schedules.3.readDataPercent',
        'schedules.3.apss',
        'schedules.5.apps',
        'schedules.5.name',
        'schedules.6',
      ].sort(),
    );
    const at = (path: string) => result.issues.find((i) => i.path === path)?.message ?? '';
    expect(at('schedules.1.cron')).toMatch(/invalid cron expression: expected 5 fields/);
    expect(at('schedules.3.apps')).toMatch(/only to the backup and verify actions/);
    expect(at('schedules.3.readDataPercent')).toMatch(/only to the check action/);
    expect(at('schedules.5.name')).toMatch(/already used/);
    expect(at('schedules.0.apps.0')).toMatch(/DNS-1123/);
  });

  it('takes a restore drill of chosen apps', () => {
    expect(parseSchedules([{ name: 'drills', cron: '@weekly', action: 'verify', apps: ['gitea'] }])).toEqual({
      ok: true, schedules: [{ name: 'drills', cron: '@weekly', action: 'verify', apps: ['gitea'] }],
    });
  });

  it('keeps a time zone, and refuses one it does not know', () => {
    expect(parseSchedules([{ cron: '0 3 * * *', action: 'backup', timezone: 'Europe/Berlin' }])).toEqual({
      ok: true, schedules: [{ name: 'backup-1', cron: '0 3 * * *', action: 'backup', timezone: 'Europe/Berlin' }],
    });
    const bad = parseSchedules([{ cron: '0 3 * * *', action: 'backup', timezone: 'Berlin' }, { cron: '@daily', action: 'check', timezone: '' }]);
    expect(bad).toMatchObject({ ok: false, issues: [
      { path: 'schedules.0.timezone', message: expect.stringMatching(/^unknown time zone/) },
      { path: 'schedules.1.timezone', message: expect.stringMatching(/^unknown time zone/) },
    ] });
  });

  it('rejects a value that is not a list, and uses the given base path', () => {
    const result = parseSchedules({ cron: '@daily' }, 'cloud.backup.schedules');
    expect(result).toMatchObject({ ok: false, issues: [{ path: 'cloud.backup.schedules' }] });
  });
});
