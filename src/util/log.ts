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

export function scrub(text: string): string {
  return processSecrets.redact(redactUrlCredentials(text));
}

function write(level: LogLevel, scope: string, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < ORDER[minLevel]) return;
  const record = { t: new Date().toISOString(), level, scope, msg, ...fields };
  sink(scrub(JSON.stringify(record)));
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
