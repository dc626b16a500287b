// Backups and their snapshots, answered from the snapshot cache; backupApp, backupCluster and
// deleteBackup start operations.
import { builder } from '../builder.js';
import { ConflictError, ForbiddenError, NotFoundError, RepositoryError, ValidationError } from '../errors.js';
import type { BackupArtifactView, BackupView } from '../engine/backup/catalog.js';
import type { Snapshot } from '../engine/restic/index.js';
import type { GraphQLContext } from '../context.js';
import { dnsLabel } from '../wild/names.js';
import { AppRef } from './app.js';
import { requireAdmin } from './errors.js';
import { InstanceRef } from './instance.js';
import { NodeInterface, decodeGlobalId, encodeGlobalId, nodeLoaders } from './node.js';
import { OperationRef } from './operation.js';
import { connectionOf, defineConnection, FIRST_DESCRIPTION } from './pagination.js';
import { OperationPayloadRef } from './repository.js';

export const BackupKindEnum = builder.enumType('BackupKind', { values: ['APP', 'CLUSTER'] as const });
export const BackupStatusEnum = builder.enumType('BackupStatus', { values: ['COMPLETE', 'INCOMPLETE'] as const });

interface SnapshotParent { instance: string; snap: Snapshot }

const SnapshotRef = builder.objectRef<SnapshotParent>('Snapshot').implement({
  interfaces: [NodeInterface],
  isTypeOf: (v) => typeof v === 'object' && v !== null && 'snap' in v,
  fields: (t) => ({
    id: t.id({ resolve: (s) => encodeGlobalId('Snapshot', `${s.instance}/${s.snap.id}`) }),
    snapshotId: t.string({ resolve: (s) => s.snap.id }),
    shortId: t.string({ resolve: (s) => s.snap.shortId }),
    time: t.field({ type: 'DateTime', resolve: (s) => s.snap.time }),
    hostname: t.string({ resolve: (s) => s.snap.hostname }),
    tags: t.stringList({ resolve: (s) => s.snap.tags }),
    paths: t.stringList({ resolve: (s) => s.snap.paths }),
  }),
});

const BackupArtifactRef = builder.objectRef<BackupArtifactView & { instance: string }>('BackupArtifact').implement({
  fields: (t) => ({
    kind: t.exposeString('kind', { description: 'postgres, mysql, redis, pvc, config, manifest, ...' }),
    name: t.exposeString('name', { description: 'database or PVC name' }),
    snapshot: t.field({ type: SnapshotRef, resolve: (a) => ({ instance: a.instance, snap: a.snapshot }) }),
    sizeBytes: t.field({ type: 'ByteCount', resolve: (a) => a.sizeBytes }),
    warnings: t.stringList({ description: 'what the backup of this artifact met and got past: files of a volume that the app changed while tar read them (each is held as read)', resolve: (a) => a.warnings ?? [] }),
  }),
});

export const VerificationRef = builder.objectRef<{ verifiedAt: string; ok: boolean; details: string | null }>('Verification').implement({
  fields: (t) => ({
    verifiedAt: t.field({ type: 'DateTime', resolve: (v) => v.verifiedAt }),
    ok: t.exposeBoolean('ok'),
    details: t.exposeString('details', { nullable: true }),
  }),
});

export const BackupRef = builder.objectRef<BackupView>('Backup');
BackupRef.implement({
  interfaces: [NodeInterface],
  isTypeOf: (v) => typeof v === 'object' && v !== null && 'backupId' in v && 'artifacts' in v,
  fields: (t) => ({
    id: t.id({ resolve: (b) => encodeGlobalId('Backup', `${b.instance}/${b.backupId}`) }),
    backupId: t.exposeString('backupId', { description: 'the id in the restic tags (backup:<id>)' }),
    kind: t.field({ type: BackupKindEnum, resolve: (b) => b.kind }),
    status: t.field({ type: BackupStatusEnum, resolve: (b) => b.status }),
    instance: t.field({ type: InstanceRef, resolve: (b, _a, ctx) => ctx.services.store.requireInstance(b.instance) }),
    appName: t.exposeString('appName', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (b) => b.createdAt }),
    sizeBytes: t.field({ type: 'ByteCount', description: 'bytes read from the sources', resolve: (b) => b.sizeBytes }),
    addedBytes: t.field({ type: 'ByteCount', nullable: true, description: 'bytes the repository grew by (before compression)', resolve: (b) => b.addedBytes }),
    reason: t.string({ nullable: true, description: 'manual, schedule or safety (taken before a restore)', resolve: (b) => b.manifest?.reason ?? null }),
    operationId: t.string({ nullable: true, resolve: (b) => b.manifest?.operationId ?? null }),
    artifacts: t.field({ type: [BackupArtifactRef], resolve: (b) => b.artifacts.map((a) => ({ ...a, instance: b.instance })) }),
    problem: t.exposeString('problem', {
      nullable: true,
      description: 'why the status may be wrong: the manifest is there but could not be read this time (the backup may be complete; nothing removes it meanwhile)',
    }),
    skipped: t.stringList({ description: 'what was deliberately left out, with why', resolve: (b) => (b.manifest?.skipped ?? []).map((s) => `${s.kind}:${s.name}: ${s.reason}`) }),
  }),
});

/** Accepts a Backup's global ID or `<backupId>` (then the instance must be known). */
export async function findBackup(ctx: GraphQLContext, id: string, instance?: string): Promise<BackupView | null> {
  const decoded = decodeGlobalId(id);
  let instName = instance;
  let backupId = id;
  if (decoded?.type === 'Backup') [instName, backupId] = decoded.key.split('/') as [string, string];
  if (instName) {
    const inst = await ctx.services.store.instance(instName).catch(() => null);
    return inst ? ctx.services.backups.get(inst, backupId) : null;
  }
  for (const inst of await ctx.services.store.instances()) {
    const b = await ctx.services.backups.get(inst, backupId).catch(() => null);
    if (b) return b;
  }
  return null;
}

nodeLoaders.set('Backup', (key, ctx) => findBackup(ctx, encodeGlobalId('Backup', key)));
nodeLoaders.set('Snapshot', async (key, ctx) => {
  const [instName, snapId] = key.split('/');
  const inst = instName ? await ctx.services.store.instance(instName).catch(() => null) : null;
  if (!inst || !snapId) return null;
  for (const b of await ctx.services.backups.list(inst)) {
    const snap = b.snapshots.find((s) => s.id === snapId);
    if (snap) return { instance: inst.name, snap };
  }
  return null;
});

const BackupConnectionRef = defineConnection('Backup', BackupRef);

builder.objectField(InstanceRef, 'backups', (t) =>
  t.field({
    type: BackupConnectionRef,
    args: {
      app: t.arg.string({ required: false }),
      kind: t.arg({ type: BackupKindEnum, required: false }),
      status: t.arg({ type: BackupStatusEnum, required: false }),
      first: t.arg.int({ required: false, description: FIRST_DESCRIPTION }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (i, args, ctx) =>
      connectionOf(await ctx.services.backups.list(i, { app: args.app, kind: args.kind, status: args.status }), args, (b) => [b.createdAt, b.backupId]),
  }),
);

builder.objectFields(AppRef, (t) => ({
  backups: t.field({
    type: BackupConnectionRef,
    args: { first: t.arg.int({ required: false, description: FIRST_DESCRIPTION }), after: t.arg.string({ required: false }) },
    resolve: async (a, args, ctx) => {
      const inst = await ctx.services.store.requireInstance(a.instance);
      return connectionOf(await ctx.services.backups.list(inst, { app: a.name, kind: 'APP' }), args, (b) => [b.createdAt, b.backupId]);
    },
  }),
  latestBackup: t.field({
    type: BackupRef,
    nullable: true,
    description: 'the most recent COMPLETE backup',
    resolve: async (a, _args, ctx) => {
      const inst = await ctx.services.store.requireInstance(a.instance);
      return ctx.services.backups.latestComplete(inst, a.name);
    },
  }),
}));

builder.objectField(OperationRef, 'backup', (t) =>
  t.field({
    type: BackupRef,
    nullable: true,
    description: 'the backup made or restored, where there is one',
    resolve: async (o, _a, ctx) => {
      if (!o.backupId) return null;
      const inst = await ctx.services.store.instance(o.instanceName).catch(() => null);
      return inst ? ctx.services.backups.get(inst, o.backupId).catch(() => null) : null;
    },
  }),
);

const BackupAppInput = builder.inputType('BackupAppInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: dnsLabel }),
    app: t.string({ required: true, validate: dnsLabel }),
  }),
});
const BackupClusterInput = builder.inputType('BackupClusterInput', {
  fields: (t) => ({ instance: t.string({ required: true, validate: dnsLabel }) }),
});

builder.mutationFields((t) => ({
  backupApp: t.field({
    type: OperationPayloadRef,
    args: { input: t.arg({ type: BackupAppInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'BackupAppResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { operation: await ctx.services.backups.backupApp(input.instance, input.app) };
    },
  }),
  backupCluster: t.field({
    type: OperationPayloadRef,
    args: { input: t.arg({ type: BackupClusterInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'BackupClusterResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { operation: await ctx.services.backups.backupCluster(input.instance) };
    },
  }),
  deleteBackup: t.field({
    type: OperationPayloadRef,
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'DeleteBackupResult' } },
    resolve: async (_r, { id }, ctx) => {
      requireAdmin(ctx.role);
      const b = await findBackup(ctx, String(id));
      if (!b) throw new NotFoundError(`no backup with id "${String(id).slice(0, 80)}"`);
      return { operation: await ctx.services.backups.deleteBackup(b.instance, b.backupId) };
    },
  }),
}));
