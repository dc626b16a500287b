// The Error interface and the error types of the contract. Resolvers throw these classes
// (src/errors.ts); @pothos/plugin-errors turns them into members of the result unions.
import { builder } from '../builder.js';
import { ConflictError, ForbiddenError, NotFoundError, RepositoryError, ValidationError, WildError, type Issue } from '../errors.js';

export const ErrorInterface = builder.interfaceRef<WildError>('Error').implement({
  description: 'Every expected failure is a type implementing Error, returned in a union.',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.exposeString('code'),
  }),
});

export const ValidationIssueRef = builder.objectRef<Issue>('ValidationIssue').implement({
  fields: (t) => ({
    path: t.exposeString('path'),
    message: t.exposeString('message'),
  }),
});

for (const [cls, name] of [
  [NotFoundError, 'NotFoundError'],
  [ConflictError, 'ConflictError'],
  [RepositoryError, 'RepositoryError'],
  [ForbiddenError, 'ForbiddenError'],
] as const) {
  builder.objectType(cls as unknown as typeof NotFoundError, {
    name,
    interfaces: [ErrorInterface],
    isTypeOf: (v) => v instanceof cls,
    fields: () => ({}),
  });
}

builder.objectType(ValidationError, {
  name: 'ValidationError',
  interfaces: [ErrorInterface],
  isTypeOf: (v) => v instanceof ValidationError,
  fields: (t) => ({
    issues: t.field({ type: [ValidationIssueRef], resolve: (e) => e.issues }),
  }),
});

/** Fails with ForbiddenError unless the caller holds the admin token. */
export function requireAdmin(role: string): void {
  if (role !== 'admin') throw new ForbiddenError();
}
