// Retention: restic's forget policy as a pure function, and Wild Backup's rules on top of it.
export { applyRetentionPolicy, isEmptyPolicy, KEEP_REASONS } from './policy.js';
export type { RetentionItem, RetentionPolicy, RetentionResult } from './policy.js';
export { planRetention, INCOMPLETE_GRACE_MS, PLAN_REASONS } from './plan.js';
export type { RetentionBackup, RetentionPlan } from './plan.js';
export { readInstant } from './time.js';
export type { RecordedInstant } from './time.js';
