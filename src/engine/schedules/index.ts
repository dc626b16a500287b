// Schedules: cron entries of cloud.backup.schedules, validated, and a scheduler that fires them.
export { parseSchedules, SCHEDULE_ACTIONS } from './config.js';
export type { ScheduleAction, ScheduleConfigIssue, ScheduleConfigResult, ScheduleEntry } from './config.js';
export { CRON_MACROS, InvalidCronError, missedRun, nextRun, validateCron } from './cron.js';
export { Scheduler } from './scheduler.js';
export type { DueRun, OnDue, SchedulerOptions, TimerHandle } from './scheduler.js';
