// zod schemas of the Wild Central files (ARCHITECTURE.md §1). Known keys are typed;
// unknown keys are kept, since Wild Cloud adds its own freely.
import { z } from 'zod';
import { dnsLabel } from './names.js';

const optionalInt = z.number().int().nonnegative().optional();

export const retentionSchema = z.object({
  keepLast: optionalInt,
  keepHourly: optionalInt,
  keepDaily: optionalInt,
  keepWeekly: optionalInt,
  keepMonthly: optionalInt,
  keepYearly: optionalInt,
});
export type Retention = z.infer<typeof retentionSchema>;

export const backupSectionSchema = z.looseObject({
  repository: z.string().optional(),
  staging: z.string().optional(),
  retention: retentionSchema.optional(),
  backend: z
    .looseObject({
      endpoint: z.string().optional(),
      region: z.string().optional(),
      port: z.number().int().min(1).max(65535).optional(),
      cacert: z.string().optional(),
    })
    .optional(),
});
export type BackupSection = z.infer<typeof backupSectionSchema>;

const appConfigSchema = z.record(z.string(), z.unknown());

export const configSchema = z.looseObject({
  cloud: z.looseObject({ backup: backupSectionSchema.nullish() }).nullish(),
  cluster: z.looseObject({}).nullish(),
  apps: z.record(z.string(), appConfigSchema.nullish()).nullish(),
});
export type InstanceConfig = z.infer<typeof configSchema>;

const secretString = z.string();
export const credentialsSchema = z.looseObject({
  s3: z.object({ accessKeyId: secretString, secretAccessKey: secretString }).optional(),
  sftp: z.object({ password: secretString.optional(), privateKey: secretString.optional() }).optional(),
  azure: z.object({ accountName: secretString, accountKey: secretString }).optional(),
  gcs: z.object({ projectId: secretString.optional(), serviceAccountKey: secretString }).optional(),
  b2: z.object({ accountId: secretString, accountKey: secretString }).optional(),
  rest: z.object({ username: secretString, password: secretString }).optional(),
});

export const secretsSchema = z.looseObject({
  cloud: z
    .looseObject({
      backup: z.looseObject({
        password: secretString.optional(),
        defaultRepositoryPassword: secretString.optional(),
        credentials: credentialsSchema.optional(),
      }).nullish(),
    })
    .nullish(),
  apps: z.record(z.string(), appConfigSchema.nullish()).nullish(),
});
export type InstanceSecrets = z.infer<typeof secretsSchema>;

export const requirementSchema = z.object({
  name: z.string().min(1),
  alias: z.string().optional(),
  installedAs: z.string().optional(),
});

export const manifestSchema = z.looseObject({
  name: dnsLabel,
  version: z.union([z.string(), z.number()]).transform(String).optional(),
  description: z.string().optional(),
  requires: z.array(requirementSchema).optional(),
  defaultConfig: z.record(z.string(), z.unknown()).nullish(),
  requiredSecrets: z.array(z.string()).optional(),
});
export type AppManifest = z.infer<typeof manifestSchema>;
