// Backup configuration and the restic repository of an instance: config (never a secret),
// status, statistics, and the mutations that configure, test and initialise it.
import { z } from 'zod';
import { builder } from '../builder.js';
import { ForbiddenError, NotFoundError, RepositoryError, ValidationError, ConflictError } from '../errors.js';
import type { BackupConfigInput, BackupConfigView, RepositoryStatusView, RepositoryStatsView } from '../engine/repository/service.js';
import type { UnreadableSnapshot } from '../engine/restic/index.js';
import type { OperationRecord } from '../engine/operations/index.js';
import { storagePlugins } from '../plugins/storage/registry.js';
import type { InstanceInfo } from '../wild/store.js';
import { dnsLabel } from '../wild/names.js';
import type { Retention } from '../wild/schemas.js';
import { requireAdmin } from './errors.js';
import { InstanceRef } from './instance.js';
import { OperationRef } from './operation.js';
import { storageCatalog } from './plugins.js';

storageCatalog.list = () => storagePlugins;

const RetentionPolicyRef = builder.objectRef<Retention>('RetentionPolicy').implement({
  fields: (t) => ({
    keepLast: t.int({ nullable: true, resolve: (r) => r.keepLast ?? null }),
    keepHourly: t.int({ nullable: true, resolve: (r) => r.keepHourly ?? null }),
    keepDaily: t.int({ nullable: true, resolve: (r) => r.keepDaily ?? null }),
    keepWeekly: t.int({ nullable: true, resolve: (r) => r.keepWeekly ?? null }),
    keepMonthly: t.int({ nullable: true, resolve: (r) => r.keepMonthly ?? null }),
    keepYearly: t.int({ nullable: true, resolve: (r) => r.keepYearly ?? null }),
  }),
});

const BackupConfigRef = builder.objectRef<BackupConfigView>('BackupConfig').implement({
  description: 'The backup settings of an instance. Never carries a password, key or credential.',
  fields: (t) => ({
    repository: t.exposeString('repository', { nullable: true, description: 'credentials stripped; null when the embedded default is used' }),
    effectiveRepository: t.exposeString('effectiveRepository', { description: 'where backups go (the embedded default when none is configured)' }),
    isDefault: t.exposeBoolean('isDefault'),
    backend: t.exposeString('backend', { description: 'storage plugin name' }),
    retention: t.field({ type: RetentionPolicyRef, resolve: (c) => c.retention }),
    endpoint: t.exposeString('endpoint', { nullable: true }),
    region: t.exposeString('region', { nullable: true }),
    port: t.exposeInt('port', { nullable: true }),
    cacert: t.exposeString('cacert', { nullable: true, description: 'path of extra CA certificates trusted for the backend' }),
    hasPassword: t.exposeBoolean('hasPassword'),
    configuredCredentials: t.exposeStringList('configuredCredentials', { description: 'e.g. ["s3"]; never the values' }),
  }),
});

const UnreadableSnapshotRef = builder.objectRef<UnreadableSnapshot>('UnreadableSnapshot').implement({
  description: 'a snapshot restic could not read',
  fields: (t) => ({
    id: t.exposeString('id', { description: 'its id as restic prints it (restic 0.14: the first 8 hex digits)' }),
    reason: t.exposeString('reason', { description: "restic's words" }),
  }),
});

const RepositoryStatusRef = builder.objectRef<RepositoryStatusView>('RepositoryStatus').implement({
  fields: (t) => ({
    initialized: t.exposeBoolean('initialized'),
    reachable: t.exposeBoolean('reachable'),
    error: t.exposeString('error', { nullable: true }),
    errorCode: t.exposeString('errorCode', { nullable: true }),
    lastBackupAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.lastBackupAt }),
    snapshotCount: t.exposeInt('snapshotCount'),
    unreadableSnapshots: t.field({
      type: [UnreadableSnapshotRef],
      description: 'snapshots restic could not read (damaged where they are stored), left out of every listing; nothing is removed by retention while there are any (checkRepository tells more)',
      resolve: (s) => s.unreadableSnapshots ?? [],
    }),
  }),
});

/** The stats of one instance's repository (the instance lets fields such as perApp list its backups). */
export const RepositoryStatsRef = builder.objectRef<RepositoryStatsView & { instance: InstanceInfo }>('RepositoryStats').implement({
  fields: (t) => ({
    totalSize: t.field({ type: 'ByteCount', description: 'bytes stored in the repository', resolve: (s) => s.totalSize }),
    totalUncompressedSize: t.field({ type: 'ByteCount', nullable: true, description: 'before compression, where restic reports it', resolve: (s) => s.totalUncompressedSize ?? null }),
    logicalSize: t.field({ type: 'ByteCount', description: "sum of all snapshots' source bytes", resolve: (s) => s.logicalSize }),
    deduplicationRatio: t.float({ description: 'logicalSize / totalSize', resolve: (s) => (s.totalSize > 0 ? s.logicalSize / s.totalSize : 1) }),
    compressionRatio: t.float({ nullable: true, resolve: (s) => s.compressionRatio ?? (s.totalUncompressedSize && s.totalSize > 0 ? s.totalUncompressedSize / s.totalSize : null) }),
    snapshotCount: t.exposeInt('snapshotCount'),
    oldestSnapshotAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.oldestSnapshotAt }),
    latestSnapshotAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.latestSnapshotAt }),
  }),
});

interface RepositoryParent { inst: InstanceInfo; config: BackupConfigView }

const RepositoryRef = builder.objectRef<RepositoryParent>('Repository').implement({
  fields: (t) => ({
    uri: t.string({ nullable: true, description: 'credentials stripped', resolve: (r) => r.config.effectiveRepository }),
    backend: t.string({ resolve: (r) => r.config.backend }),
    status: t.field({ type: RepositoryStatusRef, resolve: (r, _a, ctx) => ctx.services.repositories.status(r.inst) }),
    stats: t.field({
      type: RepositoryStatsRef,
      nullable: true,
      description: 'null while the repository cannot be read',
      resolve: async (r, _a, ctx) => {
        const st = await ctx.services.repositories.status(r.inst);
        if (!st.initialized || !st.reachable || st.error) return null;
        return { ...(await ctx.services.repositories.stats(r.inst)), instance: r.inst };
      },
    }),
  }),
});

builder.objectFields(InstanceRef, (t) => ({
  backupConfig: t.field({ type: BackupConfigRef, resolve: (i, _a, ctx) => ctx.services.repositories.config(i) }),
  repository: t.field({
    type: RepositoryRef,
    resolve: async (i, _a, ctx) => ({ inst: i, config: await ctx.services.repositories.config(i) }),
  }),
}));

// ---- inputs ----------------------------------------------------------------------------------

const noControl = (max: number) => z.string().max(max, `must be at most ${max} characters`).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');
/** Secrets are opaque text, stored verbatim and never executed; control characters are refused (keys may span lines). */
const secretText = (max: number, multiline = false) => z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`)
  .regex(multiline ? /^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/ : /^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');
/** A host, host:port or http(s) URL; nothing a shell or a URL parser could misread. */
const endpoint = z.string().max(2048, 'must be at most 2048 characters').regex(/^(https?:\/\/)?[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/, 'must be a host name, host:port or an http(s) URL');
const keep = z.number().int('must be an integer').min(0, 'must not be negative').max(100_000, 'is too large').nullish();

const RetentionPolicyInput = builder.inputType('RetentionPolicyInput', {
  fields: (t) => ({
    keepLast: t.int({ validate: keep }),
    keepHourly: t.int({ validate: keep }),
    keepDaily: t.int({ validate: keep }),
    keepWeekly: t.int({ validate: keep }),
    keepMonthly: t.int({ validate: keep }),
    keepYearly: t.int({ validate: keep }),
  }),
});

const S3CredentialsInput = builder.inputType('S3CredentialsInput', {
  fields: (t) => ({
    accessKeyId: t.string({ required: true, validate: secretText(256) }),
    secretAccessKey: t.string({ required: true, validate: secretText(256) }),
  }),
});
const SftpCredentialsInput = builder.inputType('SftpCredentialsInput', {
  fields: (t) => ({
    password: t.string({ validate: secretText(1024).nullish() }),
    privateKey: t.string({ validate: secretText(64 * 1024, true).nullish() }),
  }),
});
const AzureCredentialsInput = builder.inputType('AzureCredentialsInput', {
  fields: (t) => ({
    accountName: t.string({ required: true, validate: secretText(256) }),
    accountKey: t.string({ required: true, validate: secretText(1024) }),
  }),
});
const GcsCredentialsInput = builder.inputType('GcsCredentialsInput', {
  fields: (t) => ({
    projectId: t.string({ validate: secretText(256).nullish() }),
    serviceAccountKey: t.string({ required: true, validate: secretText(64 * 1024, true) }),
  }),
});
const B2CredentialsInput = builder.inputType('B2CredentialsInput', {
  description: "restic's native b2 backend (b2:bucket with these); the S3-compatible API takes s3 credentials",
  fields: (t) => ({
    accountId: t.string({ required: true, validate: secretText(256) }),
    accountKey: t.string({ required: true, validate: secretText(1024) }),
  }),
});
const RestCredentialsInput = builder.inputType('RestCredentialsInput', {
  description: 'HTTP basic auth for a rest-server (instead of user:password in the URL)',
  fields: (t) => ({
    username: t.string({ required: true, validate: secretText(256) }),
    password: t.string({ required: true, validate: secretText(1024) }),
  }),
});
const CredentialsInput = builder.inputType('CredentialsInput', {
  fields: (t) => ({
    s3: t.field({ type: S3CredentialsInput }),
    sftp: t.field({ type: SftpCredentialsInput }),
    azure: t.field({ type: AzureCredentialsInput }),
    gcs: t.field({ type: GcsCredentialsInput }),
    b2: t.field({ type: B2CredentialsInput }),
    rest: t.field({ type: RestCredentialsInput }),
  }),
});

const BackupConfigInputRef = builder.inputType('BackupConfigInput', {
  fields: (t) => ({
    repository: t.string({ required: true, validate: noControl(2048).min(1, 'is required') }),
    password: t.string({ description: 'omitted: keep the stored one. One that does not open the repository, when it is initialised, is refused and nothing is changed', validate: secretText(1024).nullish() }),
    retention: t.field({ type: RetentionPolicyInput }),
    endpoint: t.string({ validate: endpoint.nullish() }),
    region: t.string({ validate: noControl(64).nullish() }),
    port: t.int({ validate: z.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535').nullish() }),
    cacert: t.string({ validate: noControl(4096).nullish() }),
    credentials: t.field({ type: CredentialsInput, description: 'omitted: keep the stored ones' }),
  }),
});

const instanceName = dnsLabel;

const UpdateBackupConfigInput = builder.inputType('UpdateBackupConfigInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: instanceName }),
    config: t.field({ type: BackupConfigInputRef, required: true }),
  }),
});
const TestRepositoryInput = builder.inputType('TestRepositoryInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: instanceName }),
    config: t.field({ type: BackupConfigInputRef, description: 'no config: the stored one' }),
  }),
});
export const InstanceInput = builder.inputType('InstanceInput', {
  fields: (t) => ({ instance: t.string({ required: true, validate: instanceName }) }),
});
const ChangeRepositoryPasswordInput = builder.inputType('ChangeRepositoryPasswordInput', {
  fields: (t) => ({
    instance: t.string({ required: true, validate: instanceName }),
    newPassword: t.string({ required: true, description: 'the password the repository is to open with; never shown again', validate: secretText(1024) }),
  }),
});

// ---- payloads and mutations ------------------------------------------------------------------

export const OperationPayloadRef = builder.objectRef<{ operation: OperationRecord }>('OperationPayload').implement({
  fields: (t) => ({ operation: t.field({ type: OperationRef, resolve: (p) => p.operation }) }),
});
const BackupConfigPayloadRef = builder.objectRef<{ backupConfig: BackupConfigView }>('BackupConfigPayload').implement({
  fields: (t) => ({ backupConfig: t.field({ type: BackupConfigRef, resolve: (p) => p.backupConfig }) }),
});
const RepositoryStatusPayloadRef = builder.objectRef<{ status: RepositoryStatusView }>('RepositoryStatusPayload').implement({
  fields: (t) => ({ status: t.field({ type: RepositoryStatusRef, resolve: (p) => p.status }) }),
});

/** GraphQL inputs carry explicit nulls; the service takes plain objects with absent keys. */
function clean(v: object): BackupConfigInput {
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (x === null ? undefined : x)) as BackupConfigInput;
}

builder.mutationFields((t) => ({
  updateBackupConfig: t.field({
    type: BackupConfigPayloadRef,
    args: { input: t.arg({ type: UpdateBackupConfigInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ForbiddenError], directResult: true, union: { name: 'UpdateBackupConfigResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { backupConfig: await ctx.services.repositories.update(input.instance, clean(input.config)) };
    },
  }),
  testRepository: t.field({
    type: RepositoryStatusPayloadRef,
    args: { input: t.arg({ type: TestRepositoryInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'TestRepositoryResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { status: await ctx.services.repositories.test(input.instance, input.config ? clean(input.config) : null) };
    },
  }),
  changeRepositoryPassword: t.field({
    type: OperationPayloadRef,
    description: "Changes the repository's own password (restic's keys) and the one Wild Central keeps for it: the old password no longer opens it afterwards",
    args: { input: t.arg({ type: ChangeRepositoryPasswordInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'ChangeRepositoryPasswordResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { operation: await ctx.services.repositories.changePassword(input.instance, input.newPassword) };
    },
  }),
  initRepository: t.field({
    type: OperationPayloadRef,
    args: { input: t.arg({ type: InstanceInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'InitRepositoryResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      return { operation: await ctx.services.repositories.init(input.instance) };
    },
  }),
}));
