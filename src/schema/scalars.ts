// DateTime (ISO-8601, UTC) and ByteCount (non-negative integer, a JSON number).
import { Kind } from 'graphql';
import { builder } from '../builder.js';

/** The form toISOString() gives. */
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

builder.scalarType('DateTime', {
  description: 'ISO-8601 string, UTC',
  // Values are mostly stored as ISO strings already: those go out as they are, without a Date.
  serialize: (v) => (typeof v === 'string' && ISO_UTC.test(v) ? v : (v instanceof Date ? v : new Date(v as string)).toISOString()),
  parseValue: (v) => {
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw new TypeError('DateTime must be an ISO-8601 string');
    return new Date(v).toISOString();
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING || Number.isNaN(Date.parse(ast.value))) throw new TypeError('DateTime must be an ISO-8601 string');
    return new Date(ast.value).toISOString();
  },
});

function toByteCount(v: unknown): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError('ByteCount must be a non-negative integer');
  return n;
}

builder.scalarType('ByteCount', {
  description: 'A non-negative integer count of bytes, serialized as a JSON number',
  serialize: (v) => toByteCount(v),
  parseValue: (v) => toByteCount(v),
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.INT) throw new TypeError('ByteCount must be an integer');
    return toByteCount(Number(ast.value));
  },
});
