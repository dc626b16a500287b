// Repository lifecycle: retention (with a dry run), checks, and schedules.
import { z } from 'zod';
import { builder } from '../builder.js';
import { ConflictError, ForbiddenError, NotFoundError, RepositoryError, ValidationError } from '../errors.js';
import type { OperationRecord } from '../engine/operations/index.js';
import type { BackupView } from '../engine/backup/catalog.js';
import type { ScheduleView } from '../engine/lifecycle/schedules.js';
import { dnsLabel } from '../wild/names.js';
import { BackupRef } from './backup.js';
import { requireAdmin } from './errors.js';
import { InstanceRef } from './instance.js';
import { OperationRef } from './operation.js';
import { OperationPayloadRef } from './repository.js';

const ApplyRetentionInput = builder.inputType('ApplyRetentionInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: dnsLabel }),
    dryRun: t.boolean({ description: 'true: only answer what would be kept and removed' }),
    app: t.string({ description: 'only this app\'s backups (default: every app and the cluster backups)', validate: dnsLabel.nullish() }),
  }),
});
const CheckRepositoryInput = builder.inputType('CheckRepositoryInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: dnsLabel }),
    readDataPercent: t.float({ description: 'also read back this share of the data (0-100)', validate: z.number().gt(0, 'must be above 0').max(100, 'must be at most 100').nullish() }),
  }),
});

const RetentionPreviewPayloadRef = builder.objectRef<{ keep: BackupView[]; remove: BackupView[]; operation: OperationRecord | null }>('RetentionPreviewPayload').implement({
  fields: (t) => ({
    keep: t.field({ type: [BackupRef], resolve: (p) => p.keep }),
    remove: t.field({ type: [BackupRef], resolve: (p) => p.remove }),
    operation: t.field({ type: OperationRef, nullable: true, description: 'null for a dry run', resolve: (p) => p.operation }),
  }),
});

const ScheduleActionEnum = builder.enumType('ScheduleAction', {
  values: {
    BACKUP: { description: 'backs up the apps (apps, or every app)' },
    RETENTION: { description: 'applies the retention policy (forget and prune)' },
    CHECK: { description: 'checks the repository (readDataPercent of its data read back)' },
    VERIFY: { description: "a restore drill (verifyBackup) of each app's latest complete backup (apps, or every app)" },
  } as const,
});

const ScheduleRef = builder.objectRef<ScheduleView>('Schedule').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    cron: t.exposeString('cron', { description: 'five-field cron or a macro such as @daily, read in timezone' }),
    timezone: t.string({ description: 'the IANA time zone whose wall clock the cron is read in (Europe/Berlin); UTC unless one was set', resolve: (s) => s.timezone ?? 'UTC' }),
    action: t.field({ type: ScheduleActionEnum, resolve: (s) => s.action.toUpperCase() as 'BACKUP' }),
    apps: t.stringList({ nullable: true, description: 'BACKUP and VERIFY only; null: every app', resolve: (s) => s.apps ?? null }),
    readDataPercent: t.float({ nullable: true, resolve: (s) => s.readDataPercent ?? null }),
    nextRunAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.nextRunAt }),
    lastRunAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.lastRunAt }),
    lastSkippedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.lastSkippedAt }),
    lastSkipReason: t.string({ nullable: true, resolve: (s) => s.lastSkipReason }),
  }),
});

const ScheduleInput = builder.inputType('ScheduleInput', {
  fields: (t) => ({
    name: t.string({ validate: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/, 'must be letters, digits, space, dot, underscore or dash (at most 63)').nullish() }),
    cron: t.string({ required: true, validate: z.string().max(100, 'must be at most 100 characters') }),
    timezone: t.string({ description: 'an IANA time zone (Europe/Berlin, America/New_York) whose wall clock the cron is read in; default UTC', validate: z.string().max(64, 'must be at most 64 characters').nullish() }),
    action: t.field({ type: ScheduleActionEnum, required: true }),
    apps: t.stringList(),
    readDataPercent: t.float(),
  }),
});
const SetSchedulesInput = builder.inputType('SetSchedulesInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: dnsLabel }),
    schedules: t.field({ type: [ScheduleInput], required: true }),
  }),
});
const SetSchedulesPayloadRef = builder.objectRef<{ schedules: ScheduleView[] }>('SetSchedulesPayload').implement({
  fields: (t) => ({ schedules: t.field({ type: [ScheduleRef], resolve: (p) => p.schedules }) }),
});

builder.objectFields(InstanceRef, (t) => ({
  schedules: t.field({ type: [ScheduleRef], description: 'cloud.backup.schedules, with next and last run times', resolve: (i, _a, ctx) => ctx.services.schedules.view(i.name) }),
}));

builder.mutationFields((t) => ({
  applyRetention: t.field({
    type: RetentionPreviewPayloadRef,
    args: { input: t.arg({ type: ApplyRetentionInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'ApplyRetentionResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return ctx.services.maintenance.applyRetention(input.instance, { app: input.app, dryRun: input.dryRun ?? false });
    },
  }),
  checkRepository: t.field({
    type: OperationPayloadRef,
    args: { input: t.arg({ type: CheckRepositoryInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'CheckRepositoryResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { operation: await ctx.services.maintenance.checkRepository(input.instance, input.readDataPercent) };
    },
  }),
  setSchedules: t.field({
    type: SetSchedulesPayloadRef,
    args: { input: t.arg({ type: SetSchedulesInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ForbiddenError], directResult: true, union: { name: 'SetSchedulesResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      const raw = input.schedules.map((s) => Object.fromEntries(Object.entries({ ...s, action: s.action.toLowerCase() }).filter(([, v]) => v !== null && v !== undefined)));
      return { schedules: await ctx.services.schedules.set(input.instance, raw) };
    },
  }),
}));
