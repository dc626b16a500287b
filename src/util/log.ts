// The process logger: one JSON line per event on stderr, each message passed through the
// global secret set so that no password or key reaches a log line.
import { SecretSet, redactUrlCredentials } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Secrets known to the process (repository passwords, keys, tokens); the logger redacts them. */
export const processSecrets = new SecretSet();

export type LogSink = (line: string) => void;

let minLevel: LogLevel = (process.env.WILD_BACKUP_LOG_LEVEL as LogLevel | undefined) ?? 'info';
let sink: LogSink = (line) => process.stderr.write(line + '\n');

export function configureLogging(opts: { level?: LogLevel; sink?: LogSink }): void {
  if (opts.level) minLevel = opts.level;
  if (opts.sink) sink = opts.sink;
}

/** Observers see every line at every level, whatever the sink and level (the tests' leak watch). */
const observers = new Set<LogSink>();

/** Calls `observer` with every log line (after scrubbing), debug included; returns the unsubscribe. */
export function observeLogLines(observer: LogSink): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

export function scrub(text: string): string {
  return processSecrets.redact(redactUrlCredentials(text));
}

function write(level: LogLevel, scope: string, msg: string, fields?: Record<string, unknown>): void {
  const shown = ORDER[level] >= ORDER[minLevel];
  if (!shown && observers.size === 0) return;
  const record = { t: new Date().toISOString(), level, scope, msg, ...fields };
  const line = scrub(JSON.stringify(record));
  for (const observe of observers) observe(line);
  if (shown) sink(line);
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function logger(scope: string): Logger {
  return {
    debug: (m, f) => write('debug', scope, m, f),
    info: (m, f) => write('info', scope, m, f),
    warn: (m, f) => write('warn', scope, m, f),
    error: (m, f) => write('error', scope, m, f),
  };
}
