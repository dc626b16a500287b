// restoreBackup and verifyBackup: operations that bring a backup back (safely) or prove it can be.
import { builder } from '../builder.js';
import { ConflictError, ForbiddenError, NotFoundError, RepositoryError, ValidationError } from '../errors.js';
import { dnsLabel } from '../wild/names.js';
import { BackupRef, VerificationRef, findBackup } from './backup.js';
import { requireAdmin } from './errors.js';
import { OperationPayloadRef } from './repository.js';

const RestoreComponentEnum = builder.enumType('RestoreComponent', { values: ['DATABASES', 'VOLUMES', 'CONFIG'] as const });

const RestoreBackupInput = builder.inputType('RestoreBackupInput', {
  fields: (t) => ({
    backupId: t.id({ required: true, description: 'Backup.id (or its backupId)' }),
    targetApp: t.string({ description: 'restore into another app of the same instance (clone); default: the same app', validate: dnsLabel.nullish() }),
    components: t.field({
      type: [RestoreComponentEnum],
      description: "default: all (a clone: DATABASES and VOLUMES). CONFIG is the app's settings in config.yaml and secrets.yaml; for an app gone from Wild Central (wild app delete) or with broken files, CONFIG alone brings back its app directory too, and its data follows once it is deployed again",
    }),
    safetyBackup: t.boolean({ description: 'default true: back up the current state first' }),
  }),
});

builder.objectField(BackupRef, 'verification', (t) =>
  t.field({
    type: VerificationRef,
    nullable: true,
    description: 'the latest restore drill of this backup (verifyBackup)',
    resolve: (b, _a, ctx) => ctx.services.restores.verification(b.instance, b.backupId),
  }),
);

builder.mutationFields((t) => ({
  restoreBackup: t.field({
    type: OperationPayloadRef,
    args: { input: t.arg({ type: RestoreBackupInput, required: true }) },
    errors: { types: [NotFoundError, ValidationError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'RestoreBackupResult' } },
    resolve: async (_r, { input }, ctx) => {
      requireAdmin(ctx.role);
      const backup = await findBackup(ctx, String(input.backupId));
      if (!backup) throw new NotFoundError(`no backup with id "${String(input.backupId).slice(0, 80)}"`);
      return {
        operation: await ctx.services.restores.restore({
          backup, targetApp: input.targetApp, components: input.components, safetyBackup: input.safetyBackup,
        }),
      };
    },
  }),
  verifyBackup: t.field({
    type: OperationPayloadRef,
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError, ConflictError, RepositoryError, ForbiddenError], directResult: true, union: { name: 'VerifyBackupResult' } },
    resolve: async (_r, { id }, ctx) => {
      requireAdmin(ctx.role);
      const backup = await findBackup(ctx, String(id));
      if (!backup) throw new NotFoundError(`no backup with id "${String(id).slice(0, 80)}"`);
      return { operation: await ctx.services.restores.verify(backup) };
    },
  }),
}));
